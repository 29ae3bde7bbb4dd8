"""Every shipped checkpoint exports to ONNX with a dynamic batch and gives the same logits."""

import pytest
import torch

import tensor_zoo
from tensor_zoo.cli import main
from tensor_zoo.zoo.onnx_export import export_onnx
from tensor_zoo.zoo.registry import PACKAGED_INDEX, read_index

SHIPPED = sorted(read_index(PACKAGED_INDEX)["models"])
VIA_COMMAND = "cp-mnist-r16"  # checked through `tensor-zoo onnx` below (each export takes seconds)


@pytest.fixture(autouse=True)
def _packaged_index_offline(monkeypatch):
    monkeypatch.delenv("TENSOR_ZOO_INDEX", raising=False)
    monkeypatch.delenv("TENSOR_ZOO_CHECKPOINTS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("name", [name for name in SHIPPED if name != VIA_COMMAND])
def test_shipped_checkpoint_exports_with_the_same_logits(name, tmp_path):
    difference = export_onnx(tensor_zoo.load(name), tmp_path / "model.onnx", check_batch=5)
    assert difference <= 1e-4


def test_tree_contraction_exports(tmp_path):
    """The tree's shapes are static in d: no control flow on tensor values reaches the graph."""
    torch.manual_seed(0)
    net = tensor_zoo.TTNet(
        image_size=(3, 7),
        patch_size=1,
        feature_dim=2,
        feature_map="identity",
        rank=[3, 5] * 10,
        label_site="middle",
        contraction="tree",
    )
    assert export_onnx(net, tmp_path / "tree.onnx", check_batch=7) <= 1e-4


def test_onnx_command_writes_a_checked_file(tmp_path, capsys):
    out = tmp_path / "cp.onnx"
    main(["onnx", VIA_COMMAND, str(out)])
    assert out.stat().st_size > 0
    printed = capsys.readouterr().out
    assert "onnxruntime's logits differ from torch's by at most" in printed
    assert float(printed.split("at most ")[1].split()[0]) <= 1e-4
