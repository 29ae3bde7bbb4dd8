"""The layers of the package only point down: plain torch.nn code never imports the top floors."""

import re
import subprocess
import sys

import pytest

TOP_FLOORS = (
    "lightning",
    "pytorch_lightning",
    "torchmetrics",
    "wandb",
    "huggingface_hub",
    "sklearn",
)


@pytest.mark.parametrize(
    "module",
    [
        "tensor_zoo",
        "tensor_zoo.datasets",
        "tensor_zoo.networks",
        "tensor_zoo.layers",
        "tensor_zoo.functional",
        "tensor_zoo.expressivity",
        "tensor_zoo.bench",
        "tensor_zoo.zoo",
    ],
)
def test_plain_torch_modules_do_not_import_training_or_hub_code(module):
    code = (
        f"import sys, {module}\n"
        f"print(','.join(sorted(m for m in {TOP_FLOORS!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"


def test_demo_reaches_95_percent_on_digits():
    """The README's first command, end to end, in a subprocess like a user runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "tensor_zoo.demo"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    trained, published = result.stdout.strip().splitlines()[-2:]
    accuracy = float(trained.split("test accuracy ")[1].split("%")[0])
    assert accuracy >= 95.0, trained
    assert published.startswith("Published checkpoint tt-digits-r16 (sha256 verified)")
    measured, claimed = re.findall(r"(\d+\.\d+)%", published)
    assert measured == claimed, published


def test_console_script_lists_its_commands():
    result = subprocess.run(
        [sys.executable, "-m", "tensor_zoo.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in (
        "demo",
        "bench",
        "list",
        "info",
        "eval",
        "predict",
        "export",
        "publish",
        "certify",
        "onnx",
    ):
        assert f"  {command} " in result.stdout
    failed = subprocess.run(
        [sys.executable, "-m", "tensor_zoo.cli", "nope"], capture_output=True, text=True
    )
    assert failed.returncode != 0 and "unknown command 'nope'" in failed.stderr
