"""The `tensor-zoo` console script."""

from __future__ import annotations

import sys

COMMANDS = {
    "demo": (
        "tensor_zoo.demo",
        "train a TT network on scikit-learn's digits and print its test accuracy",
    ),
    "bench": (
        "tensor_zoo.bench",
        "time CP, TT and HT contractions against a reference implementation",
    ),
}


def main(argv: list[str] | None = None) -> None:
    """Dispatch `tensor-zoo COMMAND [ARGS...]` to the command's own argument parser."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        lines = [f"  {name:<8}{help_text}" for name, (_, help_text) in COMMANDS.items()]
        usage = "usage: tensor-zoo COMMAND [--help]\n\ncommands:\n" + "\n".join(lines)
        if args and args[0] not in ("-h", "--help"):
            sys.exit(f"tensor-zoo: unknown command {args[0]!r}\n\n{usage}")
        print(usage)
        return
    import importlib

    module = importlib.import_module(COMMANDS[args[0]][0])
    module.main(args[1:])


if __name__ == "__main__":
    main()
