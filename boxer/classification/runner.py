"""Library entry points behind `boxer train-cls` and `boxer eval-cls`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from boxer.classification.config import ClassifyConfig
from boxer.classification.data import load_classification_data
from boxer.classification.task import classification_trainer
from boxer.engine import checkpoint as ckpt
from boxer.engine.config import amp_mode
from boxer.errors import BoxerError

RESULTS = "results.json"


def build_classifier(name: str, *, num_classes: int, model_kwargs: dict[str, Any]) -> nn.Module:
    """Builds a registered classifier and checks it runs on one input of its size.

    Raises:
        BoxerError: unknown name, bad keyword, or a configuration the input size does not allow.
    """
    from boxer.models import MODELS

    if name not in MODELS:
        raise BoxerError(f"--model: unknown model {name!r}; registered: {', '.join(MODELS.names())}")
    try:
        model = MODELS.create(name, **{"num_classes": num_classes, **model_kwargs})
    except TypeError as err:
        raise BoxerError(f"--set: model {name} rejects a keyword ({err})") from None
    if not hasattr(model, "example_input"):
        raise BoxerError(f"--model: {name} is not an image classifier (try `boxer train` for detectors)")
    return model


def check_runs(model: nn.Module, image_size: int | None) -> None:
    """One forward pass on a 2-image batch, turning configuration errors into BoxerError."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(model.example_input(2, image_size))
    except ValueError as err:
        raise BoxerError(f"--model: {err}") from None
    finally:
        model.train(was)


def train_classifier(cfg: ClassifyConfig, *, resume: str | None = None) -> dict[str, Any]:
    """Runs a whole classification job; returns the results (also in RUN/results.json)."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    data = load_classification_data(
        cfg.data,
        root=cfg.data_root,
        val_size=cfg.val_size,
        seed=cfg.seed,
        limit_train=cfg.limit_train,
        limit_test=cfg.limit_test,
    )
    model = build_classifier(cfg.model, num_classes=data.num_classes, model_kwargs=cfg.model_kwargs)
    check_runs(model, cfg.image_size)
    if cfg.init and not resume:
        ckpt.init_from(model, cfg.init)
    run_dir = Path(cfg.out or f"runs/cls-{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {"class_names": data.class_names, "num_classes": data.num_classes}
    trainer = classification_trainer(model, data, cfg, run_dir, meta)
    if resume:
        trainer.resume(resume)
    params = sum(p.numel() for p in model.parameters())
    trainer.logger.info(
        f"train-cls: {cfg.model} ({params / 1e6:.3f}M params) on {cfg.data}: {len(data.train)} train / "
        f"{len(data.val)} val / {len(data.test)} test images, {cfg.epochs} epochs of "
        f"{trainer.iters_per_epoch} steps, {torch.get_num_threads()} threads, amp={cfg.amp}; "
        f"run dir {run_dir}"
    )
    trainer.fit()
    return {**test_best(trainer), "run_dir": str(run_dir)}


def test_best(trainer) -> dict[str, Any]:
    """Evaluates the best-on-val weights on the test split once; writes and returns RUN/results.json."""
    task, st = trainer.task, trainer.state
    best = ckpt.load_checkpoint(trainer.run_dir / "best", with_state=False)
    trainer.model.load_state_dict(best.weights)
    test = task.evaluate_split(trainer.model, task.data.test)
    results = {
        "model": task.config_json.get("model"),
        "epochs": st.epoch,
        "best_val_top1": st.best,
        "test_top1": test["top1"],
        "test_top5": test["top5"],
        "test_loss": test["loss"],
        "test_count": test["count"],
        "train_wall_s": st.train_seconds,
        "train_cpu_s": st.train_cpu_seconds,
        "steps": st.iteration,
        "images_seen": st.iteration * task.cfg.batch_size,
        "stopped_by_time": trainer.stopped_by_time,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "threads": torch.get_num_threads(),
    }
    ckpt.atomic_write_text(trainer.run_dir / RESULTS, json.dumps(results, indent=2) + "\n")
    trainer.logger.info(
        f"test (best val epoch weights): top-1 {test['top1']:.2f}% top-5 {test['top5']:.2f}% on "
        f"{test['count']} images; training {st.train_seconds:.0f}s wall, {st.train_cpu_seconds:.0f}s CPU"
    )
    return results


def load_classifier(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds a trained classifier from a checkpoint directory (RUN/best, RUN/last or RUN)."""
    point = ckpt.load_checkpoint(path, with_state=False)
    config = point.config
    if config.get("task") != "classification":
        raise BoxerError(f"{point.path}: not a classification checkpoint (use `boxer eval` for detectors)")
    model = build_classifier(
        config["model"], num_classes=config["num_classes"], model_kwargs=config.get("model_kwargs", {})
    )
    ckpt.load_model_weights(model, point.weights, point.path, config["model"])
    return model.eval(), config


def evaluate_classifier(
    path: str | Path, *, split: str = "test", data_root: str | None = None, batch_size: int = 256
) -> dict[str, Any]:
    """Top-1/top-5 of a checkpoint on the val or test split of its dataset."""
    from boxer.classification.data import iterate_batches, to_model_input
    from boxer.classification.metrics import evaluate

    if split not in ("val", "test"):
        raise BoxerError(f"--split: expected 'val' or 'test', got {split!r}")
    model, config = load_classifier(path)
    data = load_classification_data(
        config["data"],
        root=data_root or config.get("data_root"),
        val_size=config["val_size"],
        seed=config["seed"],
    )
    size = config.get("image_size") or getattr(model, "img_size", None)
    prepare = lambda images: to_model_input(images, in_chans=model.in_chans, img_size=size)  # noqa: E731
    batches = iterate_batches(getattr(data, split), batch_size=batch_size, prepare=prepare)
    return {
        "model": config["model"],
        "split": split,
        **evaluate(model, batches, amp=amp_mode(config.get("amp", "none"))),
    }
