"""Per-class AP: logged into the run's metrics.jsonl and printed by `boxer eval` as a short table."""

from __future__ import annotations

import json

from cli_helpers import run_cli


def test_run_metrics_and_eval_have_per_class_ap(trained_run, fashion_scenes_tiny, capsys):
    ann = json.loads((fashion_scenes_tiny / "annotations" / "instances_val.json").read_text())
    names = [c["name"] for c in sorted(ann["categories"], key=lambda c: c["id"])]
    line = json.loads((trained_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"bbox/AP", "bbox/AP50"} <= set(line)  # the existing keys stay
    assert all(f"bbox/AP50/{n}" in line and f"bbox/AP/{n}" in line for n in names)
    code, out, err = run_cli(
        ["eval", "--checkpoint", trained_run / "last", "--data", fashion_scenes_tiny], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    start = lines.index("Per-class bbox AP50 and AP (-1: no ground truth)")
    assert lines[start + 1].split() == ["class", "AP50", "AP"]
    assert [row.rsplit(maxsplit=2)[0] for row in lines[start + 2 : start + 2 + len(names)]] == names
