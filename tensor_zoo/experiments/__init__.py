"""The paper's experiments: run sweep files locally and build the reproduction report.

`python -m tensor_zoo.experiments sweep FILE` runs a W&B grid-sweep file point by point
(resumable, no account needed); `python -m tensor_zoo.experiments report` reads the runs and
writes docs/reproduction.md and docs/figures/ (`--quick`: tiny versions of every experiment,
end to end, in a temporary folder). Sits above `lightning/` and `data/`; the report needs
matplotlib (the `report` extra).
"""
