"""The `tensor-zoo` console script."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import NoReturn

PACKAGE = Path(__file__).resolve().parent

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
    "certify": (
        "tensor_zoo.zoo.commands:certify_command",
        "ranks and a certified lower bound on the width of an equivalent shallow network",
    ),
    "onnx": (
        "tensor_zoo.zoo.commands:onnx_command",
        "export a checkpoint to ONNX (dynamic batch), checked in onnxruntime",
    ),
    "sweep": ("tensor_zoo.experiments.sweep:main", "run a W&B grid-sweep file locally, resumably"),
    "report": (
        "tensor_zoo.experiments.report:main",
        "build docs/reproduction.md and its figures from the sweeps' runs",
    ),
}


class CommandLineError(ValueError):
    """Arguments a command's parser refused (exit status 2, like argparse)."""


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose refusals are one line (`main` prints them), not usage + error."""

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(f"{message} (see `{self.prog} --help`)")


def main(argv: list[str] | None = None) -> None:
    """Dispatch `tensor-zoo COMMAND [ARGS...]` to the command's own argument parser.

    Any failure of a command ends in one line on stderr, `tensor-zoo COMMAND: message`, and
    exit status 1; `--debug` (anywhere on the line) shows the traceback instead.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    args = [arg for arg in args if arg != "--debug"]
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        lines = [f"  {name:<9}{help_text}" for name, (_, help_text) in COMMANDS.items()]
        usage = (
            "usage: tensor-zoo COMMAND [--help] [--debug]\n\ncommands:\n"
            + "\n".join(lines)
            + "\n\n--debug: show the traceback of a failure instead of one line"
        )
        if args and args[0] not in ("-h", "--help"):
            sys.exit(f"tensor-zoo: unknown command {args[0]!r}\n\n{usage}")
        print(usage)
        return
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    module_name, function_name = COMMANDS[args[0]][0].split(":")
    command = getattr(importlib.import_module(module_name), function_name)
    try:
        command(args[1:])
    except KeyboardInterrupt:
        print(f"tensor-zoo {args[0]}: interrupted", file=sys.stderr)
        sys.exit(130)
    except CommandLineError as error:
        if debug:
            raise
        print(f"tensor-zoo {args[0]}: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        if debug:
            raise
        sys.exit(f"tensor-zoo {args[0]}: {one_line(error)}")


def one_line(error: BaseException) -> str:
    """An exception as one line: its message, with its type when that says something more.

    An error raised by tensor_zoo's own code already says what was wrong and what to do; any
    other exception (from a library, or a bug) gets its type name and a pointer to `--debug`.
    """
    message = " ".join(str(error).split()) or repr(error)
    if _raised_by_tensor_zoo(error) or isinstance(error, (FileNotFoundError, PermissionError)):
        return message
    return f"{type(error).__name__}: {message} (run with --debug for the traceback)"


def _raised_by_tensor_zoo(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is in the tensor_zoo package."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return False
    return Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


if __name__ == "__main__":
    main()
