"""Classification: splits, batch augmentation, top-k, the schedule, a 1-epoch smoke run with
checkpoints and `boxer eval-cls`, and user errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from boxer.classification import ClassifyConfig, evaluate_classifier, train_classifier
from boxer.classification.augment import random_erase, random_flip, random_translate
from boxer.classification.data import load_classification_data, to_model_input
from boxer.classification.metrics import topk_correct
from boxer.cli.main import main
from boxer.engine.optim import warmup_cosine
from boxer.engine.optim import weight_decay_groups as param_groups
from boxer.errors import BoxerError

TINY_MODEL = {"layers": (1, 1), "widths": (4, 8), "strides": (2, 2), "stem_width": 8}


def test_splits_are_disjoint_and_test_is_official() -> None:
    data = load_classification_data(val_size=1000, seed=3)
    assert len(data.train) == 59000 and len(data.val) == 1000 and len(data.test) == 10000
    train = {bytes(x.numpy()) for x in data.train.images[:3000]}
    assert not any(bytes(x.numpy()) in train for x in data.val.images[:200])
    again = load_classification_data(val_size=1000, seed=3)
    assert torch.equal(again.val.labels, data.val.labels)
    assert data.class_names[0] == "T-shirt/top" and data.num_classes == 10


def test_model_input_adapts_channels_and_size() -> None:
    images = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    assert to_model_input(images).shape == (2, 1, 28, 28)
    assert to_model_input(images, in_chans=3, img_size=56).shape == (2, 3, 56, 56)


def test_translate_moves_content_and_fills() -> None:
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3, 4] = 1.0
    out = random_translate(x, 2, fill=-1.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    ones = out == 1.0
    assert torch.all(ones.flatten(1).sum(1) == 1)  # the pixel survives (shift <= 2 keeps it inside)
    rows = ones.any(-1).float().argmax(-1).flatten()
    assert rows.min() >= 1 and rows.max() <= 5 and len(set(rows.tolist())) > 1
    assert (out == -1.0).any()


def test_flip_and_erase() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(32, 1, 1, 1)
    flipped = random_flip(x, torch.Generator().manual_seed(0))
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert torch.all(same | mirrored) and same.any() and mirrored.any()
    erased = random_erase(torch.ones(32, 1, 8, 8), 1.0, 0.0, torch.Generator().manual_seed(0))
    assert torch.all((erased == 0).flatten(1).any(1))


def test_topk() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.2], [0.1, 0.2, 0.7]])
    labels = torch.tensor([1, 2, 0])
    assert topk_correct(logits, labels, (1, 2, 5)) == {1: 1, 2: 2, 5: 3}


def test_warmup_cosine() -> None:
    f = warmup_cosine(100, 10, 0.01)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(100) == pytest.approx(0.01)
    assert all(f(i) >= f(i + 1) for i in range(10, 100))
    # a time budget: progress is the larger of steps and time, so the schedule ends when time does
    assert f(20, 0.5) == pytest.approx(f(55)) and f(20, 1.0) == pytest.approx(0.01)
    assert f(80, 0.1) == pytest.approx(f(80)) and f(3, 1.0) == pytest.approx(0.01)


def test_no_weight_decay_on_norms_and_biases() -> None:
    import boxer

    model = boxer.create_model("bot_fm", **TINY_MODEL)
    decay, plain = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim > 1 for p in decay["params"])
    assert any(names[id(p)].endswith("height_rel") for p in plain["params"]) and plain["weight_decay"] == 0


def test_one_epoch_smoke_run_and_eval(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    cfg = ClassifyConfig(
        model="bot_fm",
        model_kwargs=TINY_MODEL,
        epochs=1,
        batch_size=64,
        limit_train=256,
        val_size=128,
        limit_test=128,
        out=str(out),
        progress=False,
        lr=3e-3,
    )
    results = train_classifier(cfg)
    assert results["epochs"] == 1 and results["test_count"] == 128
    assert 0 <= results["test_top1"] <= results["test_top5"] <= 100
    assert (out / "last" / "model.safetensors").is_file() and (out / "best" / "config.json").is_file()
    assert json.loads((out / "results.json").read_text())["test_top1"] == results["test_top1"]
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert line["epoch"] == 1 and "val_top1" in line and line["train_wall_s"] > 0
    metrics = evaluate_classifier(out / "best", split="val")
    assert metrics["count"] == 128 and metrics["top1"] == pytest.approx(results["best_val_top1"])
    assert main(["eval-cls", "--checkpoint", str(out / "best"), "--json", str(tmp_path / "m.json")]) == 0
    assert "top-1" in capsys.readouterr().out and (tmp_path / "m.json").is_file()
    # resume: one more epoch continues from the saved state
    more = ClassifyConfig(**{**cfg.to_dict(), "epochs": 2})
    assert train_classifier(more, resume=str(out / "last"))["epochs"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train-cls", "--model", "nope"], "unknown model 'nope'"),
        (["train-cls", "--data", "cifar"], "unknown dataset 'cifar'"),
        (["train-cls", "--model", "maskrcnn_bot50", "--limit-train", "8"], "not an image classifier"),
        (["train-cls", "--epochs", "0"], "--epochs"),
        (["train-cls", "--max-minutes", "0"], "--max-minutes"),
        (["train-cls", "--model", "swin_fm", "--set", "mixer_kw={'window_size': 5, 'pad': False}"], "window"),
        (["eval-cls", "--checkpoint", "/nonexistent/run"], "checkpoint not found"),
    ],
)
def test_user_errors(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(BoxerError, match="unknown keys"):
        ClassifyConfig.from_dict({"epochz": 3})


def test_time_budget_stops_training_and_anneals(tmp_path) -> None:
    cfg = ClassifyConfig(
        model="resnet_fm",
        model_kwargs=TINY_MODEL,
        epochs=1000,
        max_minutes=0.01,
        batch_size=32,
        limit_train=128,
        val_size=64,
        limit_test=64,
        out=str(tmp_path / "run"),
        progress=False,
    )
    results = train_classifier(cfg)
    assert results["stopped_by_time"] and results["epochs"] < 1000
    assert 0.6 <= results["train_wall_s"] < 0.6 + 1.0  # stops within a step of the budget
    assert results["images_seen"] == 32 * results["steps"]
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["lr"] == pytest.approx(cfg.lr * cfg.min_lr_ratio)  # the cosine ran to its end
