"""`boxer data fashion-scenes | check | summary` through the real entry point, exit codes included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from boxer.cli.main import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


def test_generate_then_check_then_summary(tmp_path, fashion_root, capsys):
    out = tmp_path / "fs"
    argv = ["data", "fashion-scenes", "--out", str(out), "--train", "3", "--val", "2", "--size", "96"]
    assert main([*argv, "--seed", "1", "--fashion-root", str(fashion_root), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert f"FashionScenes written to {out}" in text and "share" in text and "Ankle boot" in text
    ann = out / "annotations" / "instances_val.json"
    assert main(["data", "check", "--images", str(out / "val"), "--annotations", str(ann)]) == 0
    assert "OK: 0 errors" in capsys.readouterr().out
    assert main(["data", "summary", "--annotations", str(ann)]) == 0
    assert "2 images" in capsys.readouterr().out
    # a previous FashionScenes output is replaced; a folder of other content is refused, exit 1
    assert main([*argv, "--seed", "2", "--fashion-root", str(fashion_root), "--workers", "1"]) == 0
    assert json.loads(ann.read_text())["info"]["seed"] == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main([*argv[:3], str(other), "--fashion-root", str(fashion_root)]) == 1
    assert "--overwrite" in capsys.readouterr().err and (other / "notes.txt").exists()


def test_check_names_the_bad_annotation(tmp_path, fashion_scenes_tiny, capsys):
    data = json.loads((fashion_scenes_tiny / "annotations" / "instances_val.json").read_text())
    data["annotations"][2]["bbox"][2] = -3
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(data))
    code = main(["data", "check", "--images", str(fashion_scenes_tiny / "val"), "--annotations", str(ann)])
    out = capsys.readouterr().out
    assert code == 1
    bad_id = data["annotations"][2]["id"]
    assert f"  {ann}: annotation id {bad_id}: bbox width -3 <= 0" in out.splitlines()
    assert "FAILED: 1 errors" in out


def test_missing_annotation_file_exits_1(tmp_path, capsys):
    assert main(["data", "check", "--annotations", str(tmp_path / "nope.json")]) == 1
    assert "annotation file not found" in capsys.readouterr().out
    assert main(["data", "summary", "--annotations", str(tmp_path / "nope.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("boxer data: error:") and "Traceback" not in err


def test_console_script_exit_codes(tmp_path, fashion_scenes_tiny):
    """The installed `boxer` command, as the reviewer runs it: exit 1 naming the problem (one process:
    importing torch dominates; the clean case runs through `main` above)."""
    exe = Path(sys.executable).parent / "boxer"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "boxer.cli.main"]
    images = tmp_path / "val"
    shutil.copytree(fashion_scenes_tiny / "val", images)
    ann = tmp_path / "ann.json"
    shutil.copy(fashion_scenes_tiny / "annotations" / "instances_val.json", ann)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    (images / "000004.png").unlink()
    bad = subprocess.run([*cmd, "data", "check", "--images", str(images), "--annotations", str(ann)],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert bad.returncode == 1
    assert f"{images / '000004.png'}: image id 4: image file is missing" in bad.stdout


def test_summary_of_malformed_annotations_is_one_line(tmp_path, capsys):
    ann = tmp_path / "odd.json"
    ann.write_text(json.dumps({"images": [], "categories": [], "annotations": [{"area": "big"}]}))
    assert main(["data", "summary", "--annotations", str(ann)]) == 1
    err = capsys.readouterr().err
    assert "malformed COCO annotations" in err and "boxer data check" in err and len(err.splitlines()) == 1
