"""The model card (README.md of a checkpoint folder), written from its config.json."""

from __future__ import annotations

import json
from typing import Any

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


def render_card(config: dict[str, Any]) -> str:
    """Hub-style card: YAML front matter (library, tags, datasets, metrics), then prose."""
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
    front_matter = "\n".join(
        [
            "---",
            "library_name: tensor-zoo",
            "license: apache-2.0",
            "pipeline_tag: image-classification",
            "tags:",
            "- image-classification",
            "- tensor-network",
            f"- {TAGS[arch]}",
            "- pytorch",
            "datasets:",
            f"- {dataset['hub_id']}",
            "metrics:",
            "- accuracy",
            "model-index:",
            f"- name: {name}",
            "  results:",
            "  - task:",
            "      type: image-classification",
            "    dataset:",
            f"      name: {json.dumps(dataset['title'])}",
            f"      type: {dataset['hub_id']}",
            "      split: test",
            "    metrics:",
            "    - type: accuracy",
            f"      value: {accuracy:.4f}",
            "---",
        ]
    )
    limitations = [
        f"Trained and measured on {dataset['description']}.",
        "Input: float images in [0, 1] at the native size; the model normalises them itself. "
        "Other sizes, channel counts or value ranges give meaningless outputs.",
    ]
    if dataset.get("note"):
        limitations.append(dataset["note"])
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
        "import tensor_zoo",
        f'model = tensor_zoo.load("{name}")  # eval mode, files checked against their sha256',
        "probs = model(images).softmax(-1)  # images: float (B, "
        f"{shape.replace(' x ', ', ')}) in [0, 1]",
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
