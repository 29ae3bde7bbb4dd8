"""The model card (README.md of a checkpoint folder), written from its config.json."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

CITATION = """@inproceedings{khrulkov2018expressive,
  title     = {Expressive power of recurrent neural networks},
  author    = {Khrulkov, Valentin and Novikov, Alexander and Oseledets, Ivan},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2018},
  url       = {https://arxiv.org/abs/1711.00811}
}"""
ARCH_PROSE = {
    "CPNet": "a CP (shallow) network: a sum of rank-1 terms, one hidden layer with product pooling",
    "TTNet": "a TT (tensor-train, recurrent) network: bilinear recurrent units swept over the "
    "patches",
    "HTNet": "an HT (hierarchical Tucker, deep convolutional) network: a binary tree of bilinear "
    "units over the patches",
}
TAGS = {"CPNet": "cp-decomposition", "TTNet": "tensor-train", "HTNet": "hierarchical-tucker"}


def card_data(config: dict[str, Any]) -> ModelCardData:
    """The card's metadata: library, license, tags, datasets, metrics and a `model-index`.

    Args:
        config: a checkpoint folder's `config.json`, as `tensor-zoo export` writes it.

    Returns:
        The metadata the Hub reads from the card's YAML front matter; the test accuracy is the
        `model-index` result (task image-classification, the dataset's test split).
    """
    from huggingface_hub import EvalResult, ModelCardData

    arch = config["architecture"]["class_path"].rsplit(".", 1)[-1]
    dataset = config["dataset"]
    return ModelCardData(
        model_name=config["name"],
        library_name="tensor-zoo",
        license="apache-2.0",
        pipeline_tag="image-classification",
        tags=["image-classification", "tensor-network", TAGS[arch], "pytorch"],
        datasets=[dataset["hub_id"]],
        metrics=["accuracy"],
        eval_results=[
            EvalResult(
                task_type="image-classification",
                task_name="Image Classification",
                dataset_type=dataset["hub_id"],
                dataset_name=dataset["title"],
                dataset_split="test",
                metric_type="accuracy",
                metric_name="Test accuracy",
                metric_value=round(config["metrics"]["test/acc"], 4),
            )
        ],
    )


LOAD_COMMENT = "# eval mode, files checked against their sha256"


def load_line(name: str, width: int = 100) -> list[str]:
    """The card snippet's `load` line with its comment, the comment on a line of its own when
    both would not fit in `width` columns (the snippet stays as `ruff format` leaves it)."""
    line = f'model = tensor_zoo.load("{name}")'
    if len(line) + 2 + len(LOAD_COMMENT) <= width:
        return [f"{line}  {LOAD_COMMENT}"]
    return [LOAD_COMMENT, line]


def render_card(config: dict[str, Any]) -> str:
    """The model card: YAML front matter from `card_data`, then prose.

    Args:
        config: a checkpoint folder's `config.json`, as `tensor-zoo export` writes it.

    Returns:
        The text of the folder's README.md.
    """
    name = config["name"]
    arch = config["architecture"]["class_path"].rsplit(".", 1)[-1]
    args = config["architecture"]["init_args"]
    dataset = config["dataset"]
    metrics = config["metrics"]
    training = config["training"]
    accuracy = metrics["test/acc"]
    shape = " x ".join(str(v) for v in config["input"]["shape"])
    epochs = training.get("epochs")
    wall = training.get("wall_time_s")
    front_matter = f"---\n{card_data(config).to_yaml()}\n---"
    limitations = [
        f"Trained and measured on {dataset['description']}.",
        "Input: float images in [0, 1] at the native size; the model normalises them itself. "
        "Other sizes, channel counts or value ranges give meaningless outputs.",
    ]
    if dataset.get("note"):
        limitations.append(dataset["note"])
    if arch == "HTNet" and args.get("ordering") != "zorder":
        limitations.append(
            f"Its tree pairs patches in {args.get('ordering')!r} order, so inner nodes merge "
            f"strips of patches, not the 2 x 2 blocks of the quad-tree (`ordering: zorder`, "
            f"HTNet's default) that the paper's deep network uses."
        )
    lines = [
        front_matter,
        "",
        f"# {name}",
        "",
        f"{ARCH_PROSE[arch][0].upper()}{ARCH_PROSE[arch][1:]}, rank {args['rank']}, trained on "
        f"{dataset['title']} with tensor_zoo (command below). {config['num_params']:,} "
        f"parameters; input {shape} in [0, 1].",
        "",
        "```python",
        "import torch",
        "import tensor_zoo",
        "",
        *load_line(name),
        f"images = torch.rand(8, {shape.replace(' x ', ', ')})  # float (B, "
        f"{shape.replace(' x ', ', ')}) in [0, 1]",
        f"probs = model(images).softmax(-1)  # (8, {len(config['classes'])})",
        "```",
        "",
        "## Results",
        "",
        "| split | images | accuracy | loss |",
        "|---|---|---|---|",
        f"| {dataset['title']} test | {int(metrics['images']):,} | {accuracy:.2%} | "
        f"{metrics['test/loss']:.4f} |",
        "",
        f"Measured by `tensor-zoo export` on {metrics['measured_on']}, with torch "
        f"{metrics['torch_version']}; `tensor-zoo eval {name}` measures it again.",
        "",
        "## Architecture",
        "",
        "```json",
        json.dumps(config["architecture"], indent=2),
        "```",
        "",
        "## Training",
        "",
        "```bash",
        training["command"],
        "```",
        "",
        f"- epochs: {epochs}; the weights are those after epoch "
        f"{training.get('checkpoint_epoch')} (step {training.get('global_step')})",
        f"- wall time: {wall / 60:.1f} min" if wall else "- wall time: not recorded",
        f"- hardware: {training['hardware']}",
        f"- hyper-parameters: {json.dumps(training.get('hyper_parameters', {}))}",
        *([f"- note: {training['training_note']}"] if training.get("training_note") else []),
        "",
        "## Limitations",
        "",
        *[f"- {item}" for item in limitations],
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)
