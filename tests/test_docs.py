"""Every code block of README.md and docs/*.md runs as written.

The ```python blocks of one file share one namespace and run in order, in a fresh working
directory; the ```bash blocks run in that directory too, with `bash -euo pipefail`. A block is
left out only when its first line is the marker `# docs-test: skip (reason)`, with the reason
spelled out (data that is not in the repository, or training that takes minutes). Other
languages (json, bibtex, plain text) are shown, not run. The Python blocks of the shipped model
cards (checkpoints/*/README.md) run too; their bash blocks are the training commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CARDS = sorted((ROOT / "checkpoints").glob("*/README.md"))
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>.*)$")
SKIP = re.compile(r"^# docs-test: skip \((?P<reason>[^)]+)\)\s*$")


@dataclass
class Block:
    language: str
    code: str
    line: int  # of the opening fence, 1-based

    @property
    def skip_reason(self) -> str | None:
        first = self.code.lstrip("\n").split("\n", 1)[0]
        match = SKIP.match(first)
        return match["reason"].strip() if match else None


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, dedented by their fence's indentation."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        number += 1
        if not opening:
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        language = (opening["info"].strip().split() or [""])[0].lower()
        body: list[str] = []
        while number < len(lines) and lines[number].strip() != fence:
            body.append(lines[number][indent:])
            number += 1
        number += 1  # the closing fence
        blocks.append(Block(language, "\n".join(body) + "\n", number - len(body) - 1))
    return blocks


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_documents_have_blocks_and_each_skip_marker_gives_a_reason():
    blocks = {relative(path): code_blocks(path) for path in DOCUMENTS}
    assert any(block.language == "python" for block in blocks["README.md"])
    for name, found in blocks.items():
        for block in found:
            if "docs-test" in block.code:
                assert block.skip_reason, (
                    f"{name}:{block.line}: a docs-test marker must be the block's first line, "
                    f"as '# docs-test: skip (reason)' with the reason written out."
                )


@pytest.fixture
def reader(tmp_path, monkeypatch):
    """A reader's session: a fresh working directory, the packaged index, no network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("TENSOR_ZOO_CHECKPOINTS", raising=False)
    monkeypatch.delenv("TENSOR_ZOO_INDEX", raising=False)


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_code_blocks_run_as_written(path, reader):
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in code_blocks(path):
        language = RUNNABLE.get(block.language)
        if language is None or block.skip_reason:
            continue
        where = f"{relative(path)}:{block.line}"
        if language == "python":
            exec(compile(block.code, where, "exec"), namespace)
        else:
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.code],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            assert result.returncode == 0, f"{where} failed:\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("path", CARDS, ids=lambda path: path.parent.name)
def test_model_card_python_blocks_run_as_written(path, reader):
    blocks = [block for block in code_blocks(path) if block.language == "python"]
    assert blocks
    namespace: dict[str, object] = {"__name__": "__card__"}
    for block in blocks:
        exec(compile(block.code, f"{relative(path)}:{block.line}", "exec"), namespace)
    assert namespace["probs"].sum(-1).allclose(namespace["torch"].ones(8))


def test_readme_table_of_checkpoints_agrees_with_the_index():
    """The README keeps a short table of the shipped checkpoints; the index is the source."""
    index = json.loads((ROOT / "tensor_zoo" / "zoo" / "index.json").read_text())["models"]
    rows = re.findall(
        r"^\| `(?P<name>[a-z0-9-]+)` \| (?P<params>[\d,]+) \| (?P<acc>[\d.]+)% \|",
        (ROOT / "README.md").read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    assert sorted(name for name, _, _ in rows) == sorted(index)
    for name, params, accuracy in rows:
        config = index[name]["config"]
        assert int(params.replace(",", "")) == config["num_params"], name
        assert float(accuracy) == pytest.approx(100 * config["metrics"]["test/acc"], abs=0.005)
