"""Bad images and output paths through the CLI: every case exits non-zero with one line
naming the file or flag, no traceback, and nothing lost (inputs byte-identical, nothing half made)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from image_helpers import png_bytes
from PIL import Image

from boxer.data import CocoDetection
from boxer.engine.predict import ImageFiles


def checksums(folder: Path) -> dict[str, str]:
    """Every file under `folder` (names relative to it) with its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refused(code: int, err: str, *fragments: str) -> None:
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture()
def folder(tmp_path, fashion_scenes_tiny) -> Path:
    """Two input images in a folder of their own."""
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("000001.png", "000002.png"):
        shutil.copy(fashion_scenes_tiny / "val" / name, images / name)
    return images


def test_out_that_is_or_lies_inside_an_input_folder_is_refused(trained_run, folder, capsys):
    before = checksums(folder)
    predict = ["predict", "--checkpoint", trained_run / "last"]
    code, _, err = run_cli([*predict, folder, "--out", folder, "--overwrite"], capsys)
    refused(code, err, f"--out: {folder} is the input folder {folder.resolve()}")
    code, _, err = run_cli([*predict, folder, "--out", folder / "sub"], capsys)
    refused(code, err, "lies inside the input folder")
    code, _, err = run_cli([*predict, folder / "000001.png", "--out", folder], capsys)
    refused(code, err, "is the input folder")
    assert checksums(folder) == before and not (folder / "sub").exists()


def test_existing_files_need_overwrite_but_our_own_outputs_do_not(trained_run, folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "000001.png").write_bytes(b"the user's own file")
    argv = ["predict", "--checkpoint", trained_run / "last", folder, "--out", out, "--score", "0"]
    code, _, err = run_cli(argv, capsys)
    refused(
        code, err, f"--out: {out / '000001.png'} exists and was not written by boxer predict", "--overwrite"
    )
    assert (out / "000001.png").read_bytes() == b"the user's own file" and len(list(out.iterdir())) == 1
    code, _, err = run_cli([*argv, "--overwrite"], capsys)
    assert code == 0, err
    written = json.loads((out / "images.json").read_text())
    assert written["written_by"] == "boxer predict"
    assert written["outputs"] == ["000001.png", "000002.png", "images.json", "results.json"]
    before = checksums(folder)
    code, _, err = run_cli(argv, capsys)  # a second run replaces what the first one wrote
    assert code == 0, err
    (out / "notes.txt").write_text("kept")
    grid = ["--grid", out / "notes.png"]
    (out / "notes.png").write_bytes(b"not ours")
    code, _, err = run_cli([*argv, *grid], capsys)
    refused(code, err, f"--grid: {out / 'notes.png'} exists and was not written by boxer predict")
    assert checksums(folder) == before and (out / "notes.png").read_bytes() == b"not ours"


def test_out_that_cannot_be_written_is_refused_before_any_work(trained_run, folder, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    predict = ["predict", "--checkpoint", tmp_path / "no-such-checkpoint", folder]
    code, _, err = run_cli([*predict, "--out", a_file], capsys)  # checked before the checkpoint is read
    refused(code, err, f"--out: {a_file}: {a_file} is a file, not a folder")
    code, _, err = run_cli([*predict, "--out", a_file / "sub"], capsys)
    refused(code, err, f"{a_file} is a file, not a folder")
    if os.path.isdir("/proc"):
        code, _, err = run_cli([*predict, "--out", "/proc/boxer-out"], capsys)
        refused(code, err, "--out: /proc/boxer-out: cannot write in /proc")
    code, _, err = run_cli([*predict, "--out", tmp_path / "o", "--grid", a_file / "g.png"], capsys)
    refused(code, err, "--grid: ", "is a file, not a folder")
    assert a_file.read_text() == "x" and not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag", [["--batch-size", "0"], ["--score", "2"], ["--score", "-0.1"]])
def test_out_of_range_flags_are_refused(trained_run, folder, tmp_path, capsys, flag):
    argv = ["predict", "--checkpoint", trained_run / "last", folder, "--out", tmp_path / "o", *flag]
    with pytest.raises(SystemExit) as info:
        run_cli(argv, capsys)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert f"argument {flag[0]}: expected" in err.splitlines()[-1]
    assert not (tmp_path / "o").exists()


def test_nothing_above_the_threshold_says_the_highest_score(trained_run, folder, tmp_path, capsys):
    argv = ["predict", "--checkpoint", trained_run / "last", folder, "--out", tmp_path / "o", "--score", "1"]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    line = next(x for x in stdout.splitlines() if "0 detections" in x)
    assert "0 detections >= 1.00 (highest 0." in line and line.endswith("lower --score or use --score auto")


def test_16_bit_png_gives_the_same_non_blank_pixels_in_training_and_predict(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 48).reshape(32, 48).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    ann = {"images": [{"id": 1, "file_name": "g16.png", "width": 48, "height": 32}], "annotations": [],
           "categories": [{"id": 1, "name": "a"}]}  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    dataset = CocoDetection(tmp_path, tmp_path / "ann.json")
    train_image = dataset._load_image(dataset.images[0])
    predict_image = ImageFiles([tmp_path / "g16.png"], [1], image_size=32, max_size=48).load_uint8(0)
    assert torch.equal(train_image, predict_image)
    assert int(predict_image.min()) == 0 and int(predict_image.max()) == 255  # not all white


def test_predict_reads_every_suffix_training_reads(trained_run, tmp_path, capsys):
    images = tmp_path / "in"
    images.mkdir()
    for suffix in (".bmp", ".tif", ".jpg", ".webp", ".gif"):
        Image.new("RGB", (64, 48), (120, 60, 30)).save(images / f"a{suffix}")
    Image.fromarray(np.full((48, 64), 30000, np.uint16)).save(images / "g16.png")
    argv = ["predict", "--checkpoint", trained_run / "last", images, "--out", tmp_path / "o", "--score", "0"]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "6 annotated images" in stdout and len(list((tmp_path / "o").glob("*.png"))) == 6


def test_short_idat_png_is_one_line_not_a_segfault(trained_run, tmp_path):
    """torchvision's decode_png crashes the process on this file; the reader names it."""
    images = tmp_path / "in"
    images.mkdir()
    (images / "short.png").write_bytes(png_bytes(96, 96, rows=2))
    before = checksums(images)
    argv = ["predict", "--checkpoint", str(trained_run / "last"), str(images), "--out", str(tmp_path / "o")]
    proc = subprocess.run(
        [sys.executable, "-m", "boxer.cli.main", *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{images / 'short.png'}: PNG image data holds" in proc.stderr
    assert checksums(images) == before and not (tmp_path / "o" / "results.json").exists()


def test_truncated_png_fails_the_doctor_naming_it(tmp_path, fashion_scenes_tiny, capsys):
    val = tmp_path / "val"
    shutil.copytree(fashion_scenes_tiny / "val", val)
    data = (val / "000002.png").read_bytes()
    (val / "000002.png").write_bytes(data[: len(data) // 3])
    ann = fashion_scenes_tiny / "annotations" / "instances_val.json"
    code, stdout, _ = run_cli(["data", "check", "--images", val, "--annotations", ann], capsys)
    assert code == 1 and "FAILED: 1 errors" in stdout
    assert f"{val / '000002.png'}: image id 2: PNG cut short inside chunk 'IDAT'" in stdout


def test_fashion_scenes_out_that_is_a_file_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for out in (a_file, a_file / "sub"):
        code, _, err = run_cli(["data", "fashion-scenes", "--out", out, "--train", "1", "--val", "0"], capsys)
        refused(code, err, str(a_file))
    assert a_file.read_text() == "x"


def test_train_stops_at_start_with_the_doctors_line(tmp_path, fashion_scenes_tiny, capsys):
    """A truncated PNG in val/ stops training before anything runs or is written."""
    data = tmp_path / "data"
    shutil.copytree(fashion_scenes_tiny, data)
    full = (data / "val" / "000003.png").read_bytes()
    (data / "val" / "000003.png").write_bytes(full[: len(full) // 3])
    out = tmp_path / "run"
    argv = ["train", "--model", "boxer2d_r18_lite", "--data", data, "--epochs", "1", "--out", out]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and "Traceback" not in err
    assert f"{data / 'val' / '000003.png'}: image id 3: PNG cut short inside chunk 'IDAT'" in err
    assert not (tmp_path / "run").exists()
