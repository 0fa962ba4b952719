"""Bad input to `boxer train` / `boxer eval`: one line naming the file or field, no traceback, a
non-zero exit, and nothing lost or half-written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import TINY, run_cli

from boxer.errors import BoxerError


def digest(folder: Path) -> dict[str, str]:
    """Every file (and link target) under `folder` -> its sha256 (links: their target)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 1, (out, err)
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def copy_data(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_json(path: Path, edit) -> None:
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))


# ---------------------------------------------------------------- train: output paths, model, data


def test_train_out_that_is_a_file(fashion_scenes_tiny, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    code, stdout, err = run_cli(["train", "--data", fashion_scenes_tiny, "--out", out, *TINY], capsys)
    one_line_error(code, stdout, err, "--out", "notes.txt", "is a file")
    assert out.read_text() == "mine" and stdout == ""


def test_train_out_inside_the_data_is_refused(fashion_scenes_tiny, tmp_path, capsys):
    data = copy_data(fashion_scenes_tiny, tmp_path / "data")
    before = digest(data)
    code, out, err = run_cli(["train", "--data", data, "--out", data / "train", *TINY], capsys)
    one_line_error(code, out, err, "--out", "input folder")
    assert digest(data) == before


def test_train_out_holding_other_files_is_refused(fashion_scenes_tiny, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    code, out, err = run_cli(["train", "--data", fashion_scenes_tiny, "--out", tmp_path / "photos"], capsys)
    one_line_error(code, out, err, "holiday.jpg", "not a boxer run")


def test_train_refuses_a_classifier_with_the_right_command(fashion_scenes_tiny, tmp_path, capsys):
    argv = ["train", "--model", "resnet50", "--data", fashion_scenes_tiny, "--out", tmp_path / "r"]
    code, out, err = run_cli(argv, capsys)
    one_line_error(code, out, err, "resnet50 is an image classifier", "boxer train-cls --model resnet50")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--set", "lr=-1"], "lr must be >= 0"),
        (["--set", "max_minutes=1e999"], "max_minutes must be a finite number"),
        (["--set", "progress_seconds=0"], "progress_seconds must be > 0"),
        (["--set", "warmup_factor=2"], "warmup_factor must be in (0, 1]"),
    ],
)
def test_train_out_of_range_values(fashion_scenes_tiny, tmp_path, capsys, argv, field):
    code, out, err = run_cli(["train", "--data", fashion_scenes_tiny, "--out", tmp_path / "r", *argv], capsys)
    one_line_error(code, out, err, field)


def test_train_refuses_a_split_without_boxes(fashion_scenes_tiny, tmp_path, capsys):
    data = copy_data(fashion_scenes_tiny, tmp_path / "data")
    edit_json(data / "annotations" / "instances_train.json", lambda c: c.update(annotations=[]))
    code, out, err = run_cli(["train", "--data", data, "--out", tmp_path / "r", *TINY], capsys)
    assert code == 1 and "instances_train.json: the training split has no boxes" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_train_prints_the_doctors_warnings(fashion_scenes_tiny, tmp_path, capsys):
    data = copy_data(fashion_scenes_tiny, tmp_path / "data")
    path = data / "annotations" / "instances_train.json"
    first = json.loads(path.read_text())["images"][0]["id"]
    edit_json(path, lambda c: c.update(annotations=[a for a in c["annotations"] if a["image_id"] != first]))
    argv = ["train", "--data", data, "--out", tmp_path / "r", *TINY, "max_iters=1", "eval_every=0"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "doctor: train: 1 warning (" in out and f"image id {first}" in out
    assert "doctor: train" in (tmp_path / "r" / "log.txt").read_text()


# ---------------------------------------------------------------- resume, init, checkpoints


def test_a_failed_resume_changes_nothing(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, symlinks=True)
    before = digest(run)
    argv = ["train", "--resume", run / "last", "--epochs", "2", "--set", "model.dim=64"]
    code, out, err = run_cli(argv, capsys)
    one_line_error(code, out, err, "does not fit this model")
    assert digest(run) == before


def test_a_truncated_checkpoint_is_one_line_everywhere(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, symlinks=True)
    weights = (run / "last" / "model.safetensors").resolve()
    weights.write_bytes(weights.read_bytes()[:5000])
    before = digest(run)
    new = ["train", "--data", fashion_scenes_tiny, "--out", tmp_path / "new"]
    for argv, needle in (
        (
            ["eval", "--checkpoint", run / "last", "--data", fashion_scenes_tiny],
            "not a readable .safetensors",
        ),
        (["train", "--resume", run / "last"], "not a readable .safetensors"),
        ([*new, "--init", weights, *TINY], "not a readable .safetensors"),
        ([*new, *TINY, f"model.pretrained_backbone={weights}"], "cannot load backbone weights"),
    ):
        code, out, err = run_cli(argv, capsys)
        one_line_error(code, out, err, str(weights), needle)
    assert digest(run) == before and not (tmp_path / "new").exists()


# ---------------------------------------------------------------- eval


def test_eval_results_path_is_checked_before_any_work(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    base = ["eval", "--checkpoint", trained_run / "last", "--data", fashion_scenes_tiny, "--results"]
    ann = fashion_scenes_tiny / "annotations" / "instances_val.json"
    kept = ann.read_bytes()
    (tmp_path / "old.json").write_text("[]")
    for target, needle in (
        (tmp_path, "is a folder"),
        (tmp_path / "old.json", "exists; pass --overwrite"),
        (tmp_path / "old.json" / "x.json", "which is a file"),
        (ann, "input file"),
    ):
        code, out, err = run_cli([*base, target], capsys)
        one_line_error(code, out, err, "--results")
        assert needle in err and "IoU metric" not in out
    assert ann.read_bytes() == kept and (tmp_path / "old.json").read_text() == "[]"


def test_eval_without_ground_truth_says_so(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    data = copy_data(fashion_scenes_tiny, tmp_path / "data")
    edit_json(data / "annotations" / "instances_val.json", lambda c: c.update(annotations=[]))
    code, out, err = run_cli(["eval", "--checkpoint", trained_run / "last", "--data", data], capsys)
    one_line_error(code, out, err, "no ground-truth boxes")
    assert "-1.000" not in out


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--workers", "-1")])
def test_eval_out_of_range_flags(trained_run, fashion_scenes_tiny, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_:
        run_cli(["eval", "--checkpoint", trained_run / "last", flag, value], capsys)
    assert exit_.value.code == 2 and f"argument {flag}: must be >=" in capsys.readouterr().err


# ---------------------------------------------------------------- an image that fails mid-run


def test_a_val_image_that_fails_keeps_the_epoch(fashion_scenes_tiny, tmp_path, capsys, monkeypatch):
    from boxer.data.coco import CocoDetection

    data = copy_data(fashion_scenes_tiny, tmp_path / "data")
    original = CocoDetection._load_image

    def broken_val(self, info):
        if self.images_dir.name == "val" and info["id"] == self.images[1]["id"]:
            raise BoxerError(f"{self.images_dir / info['file_name']}: cannot read image (truncated)")
        return original(self, info)

    monkeypatch.setattr(CocoDetection, "_load_image", broken_val)
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--data", data, "--out", run, "--epochs", "2", *TINY], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("cannot read image (truncated)") and "/val/" in err
    assert "evaluation after epoch 1 stopped" in out + err and "holds iteration 4" in out + err
    log = (run / "log.txt").read_text()
    assert "cannot read image (truncated)" in log and "\r" not in log
    monkeypatch.undo()
    code, out, err = run_cli(["train", "--resume", run / "last"], capsys)
    assert code == 0, err
    assert "resumed from" in out and "epoch 2" in out


def test_the_run_log_reads_like_the_terminal(trained_run):
    log = (trained_run / "log.txt").read_text()
    assert "schedule " in log and "IoU metric: bbox" in log and "done in" in log and "\r" not in log


# ---------------------------------------------------------------- Ctrl-C in a real process


def _boxer(*argv, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "boxer.cli.main", *map(str, argv)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_ctrl_c_in_the_first_epoch_then_resume_is_bit_identical(fashion_scenes_tiny, tmp_path):
    from safetensors.torch import load_file

    common = [*TINY, "num_threads=1", "eval_every=0", "progress=true", "progress_seconds=0.001"]
    straight = _boxer(
        "train", "--data", fashion_scenes_tiny, "--out", tmp_path / "a", "--epochs", "2", *common
    )
    assert straight.wait(timeout=600) == 0, straight.stderr.read()
    run = tmp_path / "b"
    proc = _boxer("train", "--data", fashion_scenes_tiny, "--out", run, "--epochs", "2", *common)
    for line in proc.stderr:  # the first progress line: one optimiser step is done
        if line.startswith("epoch 1/2: 1/4"):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=600) == 130, rest
    last_line = rest.strip().splitlines()[-1]
    assert last_line.startswith("boxer train: SIGINT: stopped at epoch 1, iteration")
    assert f"{run / 'last'} holds iteration" in last_line and "Traceback" not in rest
    time.sleep(0.1)
    resumed = _boxer("train", "--resume", run / "last")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    a, b = (
        load_file(tmp_path / "a" / "last" / "model.safetensors"),
        load_file(run / "last" / "model.safetensors"),
    )
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
