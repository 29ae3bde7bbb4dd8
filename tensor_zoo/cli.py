"""The `tensor-zoo` console script."""

from __future__ import annotations

import importlib
import logging
import sys

COMMANDS = {
    "demo": ("tensor_zoo.demo:main", "train a TT network on scikit-learn's digits; print accuracy"),
    "bench": ("tensor_zoo.bench:main", "time CP, TT and HT contractions against a reference"),
    "list": ("tensor_zoo.zoo.commands:list_command", "list published checkpoints"),
    "info": ("tensor_zoo.zoo.commands:info_command", "everything about a model name, as JSON"),
    "eval": (
        "tensor_zoo.zoo.commands:eval_command",
        "measure a checkpoint's test accuracy beside its card's claim",
    ),
    "predict": ("tensor_zoo.zoo.commands:predict_command", "top classes of image files"),
    "export": (
        "tensor_zoo.zoo.commands:export_command",
        "turn a training .ckpt into a checkpoint folder and index entry",
    ),
    "publish": (
        "tensor_zoo.zoo.commands:publish_command",
        "upload a checkpoint folder to the Hugging Face Hub",
    ),
    "sweep": ("tensor_zoo.experiments.sweep:main", "run a W&B grid-sweep file locally, resumably"),
    "report": (
        "tensor_zoo.experiments.report:main",
        "build docs/reproduction.md and its figures from the sweeps' runs",
    ),
}


def main(argv: list[str] | None = None) -> None:
    """Dispatch `tensor-zoo COMMAND [ARGS...]` to the command's own argument parser."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        lines = [f"  {name:<9}{help_text}" for name, (_, help_text) in COMMANDS.items()]
        usage = "usage: tensor-zoo COMMAND [--help]\n\ncommands:\n" + "\n".join(lines)
        if args and args[0] not in ("-h", "--help"):
            sys.exit(f"tensor-zoo: unknown command {args[0]!r}\n\n{usage}")
        print(usage)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    module_name, function_name = COMMANDS[args[0]][0].split(":")
    command = getattr(importlib.import_module(module_name), function_name)
    from tensor_zoo.zoo import CheckpointFormatError, ChecksumError, HubError, UnknownModelError

    try:
        command(args[1:])
    except (
        CheckpointFormatError, ChecksumError, HubError, UnknownModelError, FileNotFoundError,
    ) as error:  # fmt: skip
        # these already say what was wrong and what to do: no traceback
        sys.exit(f"tensor-zoo {args[0]}: {error}")


if __name__ == "__main__":
    main()
