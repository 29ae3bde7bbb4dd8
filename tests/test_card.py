"""Model cards: the Hub's own parser reads the front matter that `card_data` writes."""

import pytest
from huggingface_hub import ModelCard

from tensor_zoo.zoo.card import LOAD_COMMENT, load_line, render_card
from tensor_zoo.zoo.hub import source_checkout_checkpoints
from tensor_zoo.zoo.registry import PACKAGED_INDEX, read_index

SHIPPED = read_index(PACKAGED_INDEX)["models"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_card_is_the_rendered_one_and_the_hub_reads_its_results(name):
    config = SHIPPED[name]["config"]
    text = (source_checkout_checkpoints() / name / "README.md").read_text(encoding="utf-8")
    assert text == render_card(config)
    data = ModelCard(text, ignore_metadata_errors=False).data
    assert data.license == "apache-2.0" and data.library_name == "tensor-zoo"
    assert data.datasets == [config["dataset"]["hub_id"]] and data.metrics == ["accuracy"]
    (result,) = data.eval_results
    assert data.model_name == name
    assert (result.task_type, result.dataset_type, result.dataset_split, result.metric_type) == (
        "image-classification",
        config["dataset"]["hub_id"],
        "test",
        "accuracy",
    )
    assert result.dataset_name == config["dataset"]["title"]
    assert result.metric_value == pytest.approx(config["metrics"]["test/acc"], abs=5e-5)


def test_the_load_line_keeps_within_100_columns_whatever_the_name():
    short, long = "tt-mnist-r16", "ht-fashion-mnist-p7s3-r16"
    assert load_line(short) == [f'model = tensor_zoo.load("{short}")  {LOAD_COMMENT}']
    assert load_line(long) == [LOAD_COMMENT, f'model = tensor_zoo.load("{long}")']
    assert all(len(line) <= 100 for name in (short, long) for line in load_line(name))
