"""`boxer train`: end to end on a tiny FashionScenes, resume, --init, and user errors without tracebacks."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_helpers import TINY, run_cli

from boxer.cli.main import build_parser
from boxer.engine.checkpoint import load_checkpoint


def test_train_writes_a_self_describing_run(trained_run):
    last = load_checkpoint(trained_run / "last")
    assert last.config["model"] == "boxer2d_r18_lite" and last.config["num_classes"] == 10
    assert last.config["class_names"][0] == "T-shirt/top" and last.state["epoch"] == 1
    assert (trained_run / "best").exists(), "best is written after the first evaluation"
    line = json.loads((trained_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["epoch"] == 1 and "bbox/AP" in line and "train/loss_giou" in line
    saved = json.loads((trained_run / "config.json").read_text())
    assert (
        saved["image_size"] == 96
        and saved["model_kwargs"]["dim"] == 32
        and saved["cat_ids"] == list(range(1, 11))
    )
    assert any((trained_run / "tb").iterdir())


def test_resume_continues_the_run(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, symlinks=True)
    code, out, err = run_cli(
        ["train", "--resume", run / "last", "--epochs", "2", "--set", "eval_every=0"], capsys
    )
    assert code == 0, err
    assert "resumed from" in out and "epoch 2" in out
    assert load_checkpoint(run / "last").state["epoch"] == 2
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_refuses_to_overwrite_a_run(trained_run, fashion_scenes_tiny, capsys):
    code, _, err = run_cli(["train", "--data", fashion_scenes_tiny, "--out", trained_run, *TINY], capsys)
    assert code == 1 and "already holds a run" in err


def test_init_from_another_class_count_reports_skips(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(fashion_scenes_tiny, data)
    for split in ("train", "val"):  # keep 3 of the 10 categories
        path = data / "annotations" / f"instances_{split}.json"
        coco = json.loads(path.read_text())
        coco["categories"] = coco["categories"][:3]
        coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] <= 3]
        path.write_text(json.dumps(coco))
    argv = [
        "train",
        "--data",
        data,
        "--epochs",
        "1",
        "--out",
        tmp_path / "run",
        "--init",
        trained_run / "last",
    ]
    code, out, err = run_cli([*argv, *TINY, "eval_every=0"], capsys)
    assert code == 0, err
    assert "init: loaded" in out and "skipped" in out and "class" in out and "shape [10," in out


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda coco: coco["annotations"][0].update(bbox=[1, 1, -5, 4]), "bbox"),
        (lambda coco: coco["annotations"][0].update(category_id=999), "category_id 999"),
        (lambda coco: coco["images"][0].update(file_name="missing.png"), "missing.png"),
    ],
)
def test_bad_data_stops_with_the_doctors_message(fashion_scenes_tiny, tmp_path, capsys, breakage, message):
    data = tmp_path / "data"
    shutil.copytree(fashion_scenes_tiny, data)
    path = data / "annotations" / "instances_train.json"
    coco = json.loads(path.read_text())
    breakage(coco)
    path.write_text(json.dumps(coco))
    code, out, err = run_cli(["train", "--data", data, "--out", tmp_path / "run", *TINY], capsys)
    assert code == 1
    assert message in err and "instances_train.json" in err and "Traceback" not in err + out
    assert not (tmp_path / "run" / "last").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "epoch=3"], "unknown config key 'epoch'; did you mean 'epochs'"),
        (["--set", "lr=fast"], "lr='fast' is not a valid value"),
        (["--set", "batch_size"], "expected key=value"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--set", "model.not_a_keyword=1"], "bad keyword"),
        (["--config", "no_such_preset"], "no preset"),
    ],
)
def test_user_errors_are_one_line(fashion_scenes_tiny, tmp_path, capsys, argv, message):
    code, out, err = run_cli(["train", "--data", fashion_scenes_tiny, "--out", tmp_path / "r", *argv], capsys)
    assert code == 1 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_data_folder(tmp_path, capsys):
    code, _, err = run_cli(["train", "--data", tmp_path / "nothing", "--out", tmp_path / "r"], capsys)
    assert code == 1 and "is not a directory" in err


@pytest.mark.parametrize("command", ["train", "eval", "predict", "models"])
def test_every_flag_is_documented(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        assert action.help, f"boxer {command} {action.option_strings or action.dest} has no help"


@pytest.mark.slow
def test_torchrun_trains_with_two_cpu_processes(fashion_scenes_tiny, tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "boxer.cli.main",
    ]
    argv = ["train", "--data", fashion_scenes_tiny, "--epochs", "2", "--out", run, *TINY]
    done = subprocess.run([*launcher, *map(str, argv)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cpu x 2" in done.stdout and done.stdout.count("done in") == 1
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2] and lines[-1][
        "iteration"
    ] == 4  # 8 images / (2 x 2) per step
