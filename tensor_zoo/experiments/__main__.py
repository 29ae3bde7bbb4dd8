"""`python -m tensor_zoo.experiments {sweep,report} ...`: the same commands as `tensor-zoo`."""

from __future__ import annotations

import sys

from tensor_zoo.cli import main

if __name__ == "__main__":
    main(sys.argv[1:], commands=("sweep", "report"), prog="python -m tensor_zoo.experiments")
