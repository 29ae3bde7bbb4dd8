"""MkDocs hook: tables generated at build time, never copied by hand.

`docs/zoo.md` holds the marker line `<!-- zoo-table -->`; at build time it becomes a table with
one row per entry of `tensor_zoo/zoo/index.json`, the accuracy each model card claims (its
`model-index`), and the notes recorded with the training runs. A card that disagrees with the
index stops the build. `docs/getting-started.md` holds `<!-- datasets-table -->`, which becomes
the input format of each zoo dataset, from the dataset table (`tensor_zoo/datasets.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tensor_zoo.datasets import DATASETS

ROOT = Path(__file__).resolve().parent.parent
INDEX = ROOT / "tensor_zoo" / "zoo" / "index.json"
CHECKPOINTS = ROOT / "checkpoints"
MARKER = "<!-- zoo-table -->"
DATASETS_MARKER = "<!-- datasets-table -->"


def card_accuracy(name: str) -> float:
    """The test accuracy a checkpoint's model card claims in its YAML front matter."""
    card = (CHECKPOINTS / name / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n", 2)[1])
    return float(meta["model-index"][0]["results"][0]["metrics"][0]["value"])


def zoo_table(index: dict[str, Any]) -> str:
    """Markdown: a table of the published checkpoints, then the notes of their runs."""
    rows = [
        "| name | network | data (test split) | parameters | test accuracy | epochs | "
        "training wall time | hardware | on the Hub |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    notes: list[str] = []
    for name, entry in sorted(index["models"].items()):
        config = entry["config"]
        accuracy = config["metrics"]["test/acc"]
        claimed = card_accuracy(name)
        if abs(claimed - accuracy) > 5e-5:
            raise ValueError(
                f"The card of {name} claims {claimed}, the index records {accuracy}; "
                f"regenerate the card with tensor_zoo.zoo.card.render_card."
            )
        training = config["training"]
        wall = training.get("wall_time_s")
        hub = entry["hub"]["repo_id"]
        arch = config["architecture"]["class_path"].rsplit(".", 1)[-1]
        rows.append(
            f"| `{name}` | {arch}, rank {config['architecture']['init_args']['rank']} | "
            f"{config['dataset']['title']} ({config['metrics']['images']:,} images) | "
            f"{config['num_params']:,} | {accuracy:.2%} | {training.get('epochs')} | "
            f"{f'{wall / 60:.1f} min' if wall else 'not recorded'}"
            f"{' (see notes)' if training.get('training_note') else ''} | "
            f"{training['hardware']} | "
            f"{f'[{hub}](https://huggingface.co/{hub})' if hub else 'not uploaded yet'} |"
        )
        if training.get("training_note"):
            notes.append(f"`{name}`: {training['training_note']}")
        dataset_note = config["dataset"].get("note")
        if dataset_note and dataset_note not in notes:
            notes.append(dataset_note)
    lines = [*rows, "", "Notes:", "", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def datasets_table() -> str:
    """Markdown: the input format of each dataset that model names name."""
    rows = [
        "| dataset | channels | size (H × W) | what the pixels look like |",
        "| --- | --- | --- | --- |",
    ]
    names = {1: "1 (grey)", 3: "3 (R, G, B, in that order)"}
    for spec in DATASETS.values():
        if spec.zoo:
            channels = names.get(spec.in_channels, str(spec.in_channels))
            _, height, width = spec.image_shape
            rows.append(f"| {spec.title} | {channels} | {height} × {width} | {spec.pixels} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the zoo page's and the getting-started page's markers with generated tables."""
    if page.file.src_uri == "getting-started.md":
        if DATASETS_MARKER not in markdown:
            raise ValueError(f"docs/getting-started.md lost its {DATASETS_MARKER} line.")
        return markdown.replace(DATASETS_MARKER, datasets_table())
    if page.file.src_uri != "zoo.md":
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/zoo.md lost its {MARKER} line, where the table of models goes.")
    index = json.loads(INDEX.read_text(encoding="utf-8"))
    return markdown.replace(MARKER, zoo_table(index))
