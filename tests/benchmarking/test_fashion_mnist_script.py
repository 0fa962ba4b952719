"""benchmarks/fashion_mnist.py end to end on a few hundred images: a timed zoo row and the target
mode, both written side by side into one JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fashion_mnist.py"
SMALL = ["--limit-train", "192", "--limit-test", "64", "--val-size", "64", "--threads", "1"]


def _run(tmp_path: Path, *argv: str) -> str:
    cmd = [
        sys.executable,
        str(SCRIPT),
        *SMALL,
        "--runs",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "fm.json"),
    ]
    done = subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_zoo_row_and_target_share_one_report(tmp_path: Path) -> None:
    out = _run(tmp_path, "--models", "resnet_fm", "--minutes", "0.01", "--max-epochs", "50")
    assert "| resnet_fm |" in out
    out = _run(tmp_path, "--target", "--target-models", "resnet_fm", "--target-epochs", "1")
    assert "target (>= 93.5% test top-1" in out
    doc = json.loads((tmp_path / "fm.json").read_text())
    assert set(doc) == {"benchmark", "zoo", "target"}
    row = doc["zoo"]["rows"][0]
    assert row["params_m"] > 0 and row["mflops"] > 0 and 0 <= row["test_top1"] <= 100
    assert row["stopped_by_time"] and row["train_wall_s"] < 0.01 * 60 + 2  # the time cap holds
    assert row["val_curve"] and doc["zoo"]["budget"]["groups"]["main"]["minutes"] == 0.01
    target = doc["target"]
    assert target["rows"][0]["epochs"] == 1 and target["verdict"]["reached"] is False  # 192 images
