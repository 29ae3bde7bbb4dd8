"""`python -m tensor_zoo.experiments {sweep,report} ...`."""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> None:
    """Dispatch to the `sweep` or `report` command."""
    args = sys.argv[1:] if argv is None else argv
    usage = (
        "usage: python -m tensor_zoo.experiments {sweep,report} [--help]\n"
        "  sweep   run a W&B grid-sweep file locally, resumably (no account needed)\n"
        "  report  build docs/reproduction.md and docs/figures/ from the runs (--quick: a check)"
    )
    if not args or args[0] not in ("sweep", "report"):
        if args and args[0] not in ("-h", "--help"):
            sys.exit(f"unknown command {args[0]!r}\n{usage}")
        print(usage)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args[0] == "sweep":
        from tensor_zoo.experiments.sweep import main as command
    else:
        from tensor_zoo.experiments.report import main as command
    command(args[1:])


if __name__ == "__main__":
    main()
