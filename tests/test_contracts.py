"""docs/CONTRACTS.md matches the code: its package map names every package and module of `boxer/`
and only paths that exist; the files it promises in a checkpoint and a run directory are the ones
the engine writes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = (ROOT / "docs" / "CONTRACTS.md").read_text()


def _package_map() -> dict[str, str]:
    """Row path (e.g. "boxer/models/") -> the row's "what" cell."""
    section = CONTRACTS.split("## Package map", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([^`]+)`", cells[0]) if len(cells) >= 2 else None
        if match:
            rows[match.group(1)] = cells[1]
    return rows


def _section(title: str) -> str:
    return CONTRACTS.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_every_path_of_the_map_exists():
    rows = _package_map()
    assert rows, "no package map found"
    for path, what in rows.items():
        assert (ROOT / path).exists(), f"docs/CONTRACTS.md names {path}, which does not exist"
        for name in re.findall(r"`([\w/]+(?:/|\.py))`", what):  # files and folders named in the row
            candidates = [ROOT / path / name, ROOT / "boxer" / name, ROOT / name]
            assert any(c.exists() for c in candidates), f"{path} row names {name}, which does not exist"


def test_every_package_and_module_is_in_the_map():
    rows = _package_map()
    for child in sorted((ROOT / "boxer").iterdir()):
        if child.name.startswith(("_", ".")) or not (
            child.suffix == ".py" or (child / "__init__.py").exists()
        ):
            continue
        key = f"boxer/{child.name}/" if child.is_dir() else f"boxer/{child.name}"
        assert key in rows, f"docs/CONTRACTS.md's package map has no row for {key}"
        if child.is_dir():  # every sub-package is named in its package's row
            for sub in sorted(p.parent for p in child.glob("*/__init__.py")):
                relative = f"{sub.relative_to(child)}/"
                named = {
                    n.split("/", 1)[1] if n.startswith(f"{child.name}/") else n
                    for n in re.findall(r"`([\w/]+/)`", rows[key])
                }
                assert relative in named, f"the {key} row does not name its sub-package {relative}"


def test_checkpoint_and_run_files_are_the_ones_written():
    from boxer.classification import runner
    from boxer.engine import checkpoint, logging, outputs

    written = {checkpoint.WEIGHTS, checkpoint.STATE, checkpoint.CONFIG, logging.METRICS} | outputs.RUN_FILES
    written.add(runner.RESULTS)  # a train-cls run's test metrics
    text = _section("Checkpoints and runs")
    named = set(re.findall(r"`([\w.]+\.(?:safetensors|pt|json|jsonl|txt))`", text))
    assert named, "the section names no file"
    assert named <= written, f"docs/CONTRACTS.md promises files nothing writes: {sorted(named - written)}"
    folders = {n.rstrip("/") for n in re.findall(r"`(\w+/)`", text)}
    assert folders <= outputs.RUN_FILES, sorted(folders - outputs.RUN_FILES)
