"""Model names, the index of published checkpoints, and what each name means.

A name is `{arch}-{dataset}-r{rank}` (`tt-cifar10-r16`), or `{arch}-{dataset}-{layout}-r{rank}`
for a site layout other than the recipe's patches (`tt-mnist-pixels-r20`: one site per pixel;
`SITE_LAYOUTS` of `tensor_zoo.datasets`). Two kinds of names exist:

- published checkpoints: the entries of `index.json` (shipped inside the package; the
  `TENSOR_ZOO_INDEX` variable points elsewhere), each with
  its exact network config, metrics, files with sha256 and size, and Hub location;
- architectures: any `{cp,tt,ht}-{dataset}-r{rank}` with the network arguments of that
  dataset's recipe (`DatasetSpec.network_defaults()` of `tensor_zoo.datasets`, which the
  recipes read too), which `create_model` builds with fresh weights.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tensor_zoo.datasets import DATASETS, SITE_LAYOUTS, DatasetSpec

PACKAGED_INDEX = Path(__file__).with_name("index.json")
FORMAT_VERSION = 1
ARCHITECTURES = {"cp": "CPNet", "tt": "TTNet", "ht": "HTNet"}
LISTED_RANKS = (8, 16, 32)
_LAYOUTS = "|".join(SITE_LAYOUTS)
NAME_PATTERN = re.compile(
    rf"^(?P<arch>[a-z]+)-(?P<dataset>[a-z0-9-]+?)(?:-(?P<layout>{_LAYOUTS}))?-r(?P<rank>[0-9]+)$"
)


# the datasets of tensor_zoo.datasets that model names may name (the toy sets have none)
ZOO_DATASETS: dict[str, DatasetSpec] = {key: spec for key, spec in DATASETS.items() if spec.zoo}


class UnknownModelError(KeyError):
    """A model name that is neither published nor a valid `{arch}-{dataset}-r{rank}`."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class ModelName:
    """A parsed `{arch}-{dataset}[-{layout}]-r{rank}` name (layout None: the recipe's)."""

    arch: str
    dataset: str
    rank: int
    layout: str | None = None

    @classmethod
    def parse(cls, name: str) -> ModelName:
        match = NAME_PATTERN.match(name)
        if not match or match["arch"] not in ARCHITECTURES or match["dataset"] not in ZOO_DATASETS:
            raise UnknownModelError(unknown_name_message(name))
        return cls(match["arch"], match["dataset"], int(match["rank"]), match["layout"])


class IndexFileError(ValueError):
    """The index file is missing, is not JSON, or has another format."""


@cache
def _read_index(path: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:
            index = json.load(stream)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexFileError(
            f"The zoo index {path} is not valid JSON ({error}). Restore it (git checkout) or "
            f"point TENSOR_ZOO_INDEX at a good one."
        ) from error
    if not isinstance(index, dict) or not isinstance(index.get("models"), dict):
        raise IndexFileError(
            f'The zoo index {path} has no "models" object. Restore it or point '
            f"TENSOR_ZOO_INDEX at a good one."
        )
    if index.get("format_version") != FORMAT_VERSION:
        raise IndexFileError(
            f"{path} has index format {index.get('format_version')!r}; this tensor_zoo reads "
            f"format {FORMAT_VERSION}. Upgrade tensor_zoo."
        )
    return index


def index_path() -> Path:
    """The index in use: `TENSOR_ZOO_INDEX` (e.g. a maintainer's draft), else the packaged one."""
    configured = os.environ.get("TENSOR_ZOO_INDEX")
    return Path(configured).expanduser() if configured else PACKAGED_INDEX


def read_index(path: Path | None = None, missing_ok: bool = False) -> dict[str, Any]:
    """The index of published checkpoints: {"format_version": 1, "models": {name: entry}}.

    Args:
        path: the index file (default: the one in use, `index_path()`).
        missing_ok: a missing file is an empty index (for writing a new one); otherwise
            IndexFileError, since an empty zoo would hide a wrong `TENSOR_ZOO_INDEX`.
    """
    path = path or index_path()
    if missing_ok and not path.exists():
        return {"format_version": FORMAT_VERSION, "models": {}}
    if not path.is_file():
        raise IndexFileError(
            f"The zoo index {path} does not exist"
            + (" (TENSOR_ZOO_INDEX points there)" if path == index_path() != PACKAGED_INDEX else "")
            + f". Point TENSOR_ZOO_INDEX at an index file, or unset it to use the packaged one "
            f"({PACKAGED_INDEX})."
        )
    return copy.deepcopy(_read_index(path, path.stat().st_mtime_ns))


def write_index(index: dict[str, Any], path: Path | None = None) -> None:
    """Write the index with sorted names, so that its diffs stay readable."""
    path = path or index_path()
    index = {**index, "models": dict(sorted(index["models"].items()))}
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:  # a temporary sibling and a rename: a failed write leaves the old index whole
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(index, indent=2) + "\n")
        os.chmod(temporary, path.stat().st_mode if path.exists() else 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (files made by mkstemp/mkdtemp get it applied by hand)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def published_entry(name: str) -> dict[str, Any] | None:
    """The index entry of a published checkpoint, or None."""
    return read_index()["models"].get(name)


def architecture_names() -> list[str]:
    """Every `{arch}-{dataset}-r{rank}` at the listed ranks (models without weights included)."""
    return [
        f"{arch}-{dataset}-r{rank}"
        for arch in ARCHITECTURES
        for dataset in ZOO_DATASETS
        for rank in LISTED_RANKS
    ]


def list_models(pattern: str | Sequence[str] | None = None, pretrained: bool = True) -> list[str]:
    """Model names matching a shell-style pattern, sorted by name and then by rank.

    Like `timm.list_models(filter, pretrained=...)`, with one difference in the default.
    In timm, `pretrained=False` (its default) lists every architecture and `pretrained=True`
    only those with weights. Here names carry a free rank (`{arch}-{dataset}-r{rank}`), so
    the architectures are open-ended: `pretrained=True`, the default, lists the published
    checkpoints (what `tensor-zoo list` shows), and `pretrained=False` adds every
    architecture at the ranks of `LISTED_RANKS` (any other rank is valid too, for
    `create_model`).

    Args:
        pattern: a shell-style pattern ("tt-*", "*-cifar10-*"), or several (names matching
            any of them, as timm's `filter` takes a list); None: every name. Case does not
            matter ("TT-*" finds "tt-mnist-r16").
        pretrained: True: only names with published weights (`load`,
            `create_model(name, pretrained=True)`); False: also the architectures that
            `create_model(name)` builds with fresh weights.

    Returns:
        The matching names, "tt-mnist-r8" before "tt-mnist-r16".
    """
    names = set(read_index()["models"])
    if not pretrained:
        names |= set(architecture_names())
    if pattern is not None:
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        names = {  # names are lowercase: "TT-*" finds them too, on every platform
            name
            for name in names
            if any(fnmatch.fnmatchcase(name, each.lower()) for each in patterns)
        }
    return sorted(names, key=_natural_key)


def _natural_key(name: str) -> tuple[str, int]:
    """Sort "tt-mnist-r8" before "tt-mnist-r16"."""
    stem, _, rank = name.rpartition("-r")
    return (stem, int(rank)) if rank.isdigit() else (name, 0)


def unknown_name_message(name: str) -> str:
    """Say a name is unknown, show the closest known ones and the naming scheme."""
    known = list_models(pretrained=False)
    close = difflib.get_close_matches(name.strip().lower(), known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Unknown model {name!r}.{hint} Names are {{arch}}-{{dataset}}-r{{rank}} or "
        f"{{arch}}-{{dataset}}-{{layout}}-r{{rank}} with arch in {sorted(ARCHITECTURES)}, dataset "
        f"in {sorted(ZOO_DATASETS)} and layout in {sorted(SITE_LAYOUTS)}; "
        f"`tensor_zoo.list_models()` lists the published checkpoints."
    )


def no_weights_message(name: str) -> str:
    """Say that a valid name has no published weights, and which published names are closest:
    the same architecture on the same dataset, else the same dataset, else all of them.
    (A name that is not even valid raises UnknownModelError with the closest names.)"""
    parsed = ModelName.parse(name)
    published = {known: NAME_PATTERN.match(known) for known in list_models()}
    same_data = [
        k for k, match in published.items() if match and match["dataset"] == parsed.dataset
    ]
    same_kind = [k for k in same_data if published[k]["arch"] == parsed.arch]
    if same_kind:
        listing = f"the published {parsed.arch}-{parsed.dataset} checkpoints are "
        listing += ", ".join(same_kind)
    elif same_data:
        listing = f"the published {parsed.dataset} checkpoints are {', '.join(same_data)}"
    elif published:
        listing = f"the published checkpoints are {', '.join(published)}"
    else:
        listing = "no checkpoint is published yet"
    return (
        f"{name!r} has no published weights; {listing}. create_model({name!r}) builds it "
        f"with fresh weights (pretrained=False)."
    )


def default_network_config(name: str) -> dict[str, Any]:
    """The network config ({"class_path", "init_args"}) that a name stands for: a published
    checkpoint's own, else `architecture_config` of the parsed name."""
    entry = published_entry(name)
    if entry is not None:
        return copy.deepcopy(entry["config"]["architecture"])
    parsed = ModelName.parse(name)
    return architecture_config(parsed.arch, parsed.dataset, parsed.rank, parsed.layout)


def architecture_config(
    arch: str, dataset: str, rank: int, layout: str | None = None
) -> dict[str, Any]:
    """The network config of `{arch}-{dataset}[-{layout}]-r{rank}` from the tables alone: the
    dataset's recipe defaults (`DatasetSpec.network_defaults()`) at that rank, with a site
    layout's arguments over them.

    Args:
        arch: "cp", "tt" or "ht".
        dataset: a key of `ZOO_DATASETS` ("mnist", "fashion-mnist", "cifar10", "digits").
        rank: the network's rank.
        layout: a key of `SITE_LAYOUTS` ("pixels"), or None for the recipe's patches.
    """
    init_args = {**ZOO_DATASETS[dataset].network_defaults(), "rank": rank}
    if layout is not None:
        init_args.update(SITE_LAYOUTS[layout].network_args)
        if arch == "tt":
            init_args.update(SITE_LAYOUTS[layout].tt_args)
    if arch == "ht":  # HT always on its quad-tree, whatever order the others use
        init_args.pop("ordering", None)
    return {"class_path": f"tensor_zoo.{ARCHITECTURES[arch]}", "init_args": init_args}
