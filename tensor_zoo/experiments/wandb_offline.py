"""Read a W&B offline run (`offline-run-*/run-*.wandb`) without an account or a network.

The file is W&B's transaction log: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then
LevelDB-log framed records in 32 KiB blocks (4-byte checksum, 2-byte little-endian length,
1-byte type: full / first / middle / last), each a `wandb_internal_pb2.Record` protobuf. This
is what `wandb sync` uploads, so a run read here is what its dashboard will show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = b":W&B\xe1\xbe\x00"
BLOCK = 32768
RECORD_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What an offline run recorded: identity, grouping, config, summary and metric definitions.

    Args:
        run_id: the run's id.
        group: its W&B group ("" when none).
        tags: its tags.
        config: the logged config, values decoded from JSON.
        summary: the final summary (define_metric summaries included), values decoded.
        metrics: metric definitions by name or glob: {"step_metric": ..., "summary": [...]}.
        history: every logged history row, values decoded.
    """

    run_id: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def iter_records(path: str | Path) -> Any:
    """Yield the `Record` protobufs of a `.wandb` file in the order they were written."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if not data.startswith(HEADER):
        raise ValueError(f"{path} is not a W&B run file (it does not start with {HEADER!r}).")
    offset, pending = len(HEADER), b""
    while offset + RECORD_HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        if room < RECORD_HEADER:  # the rest of a block too short for a header is padding
            offset += room
            continue
        length = int.from_bytes(data[offset + 4 : offset + 6], "little")
        kind = data[offset + 6]
        payload = data[offset + RECORD_HEADER : offset + RECORD_HEADER + length]
        offset += RECORD_HEADER + length
        if kind == 0 and length == 0:  # zero padding at the end of the file
            break
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Read `run_dir` (a `wandb/offline-run-*` folder, or its `run-*.wandb` file) into an
    OfflineRun: later records update earlier ones, as the W&B server would apply them."""
    path = Path(run_dir)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise FileNotFoundError(f"No run-*.wandb file in {path}: is it a W&B run folder?")
        path = files[0]
    run = OfflineRun()
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.group = record.run.run_id, record.run.run_group
            run.tags = list(record.run.tags)
            for item in record.run.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            items = record.history.item
            run.history.append({_key(item): json.loads(item.value_json) for item in items})
        elif kind == "metric":
            name = record.metric.name or record.metric.glob_name
            summary = record.metric.summary
            run.metrics[name] = {
                "step_metric": record.metric.step_metric,
                "summary": [s for s in ("min", "max", "mean", "last") if getattr(summary, s)],
            }
    # values logged in the config as {"value": ...} (W&B's config file form) are unwrapped
    run.config = {
        key: value["value"] if isinstance(value, dict) and set(value) == {"value"} else value
        for key, value in run.config.items()
    }
    return run
