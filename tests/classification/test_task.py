"""Classification on the engine's Trainer: exact resume, mid-epoch; batches fixed by seed and position."""

from __future__ import annotations

import torch

import boxer
from boxer.classification.config import ClassifyConfig
from boxer.classification.data import ClassificationData, Split
from boxer.classification.task import SplitBatches, classification_trainer

TINY_MODEL = {"layers": (1, 1), "widths": (4, 8), "strides": (2, 2), "stem_width": 8}


def tiny_data(n_train: int = 96, n_val: int = 32) -> ClassificationData:
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % 10)

    names = [f"c{i}" for i in range(10)]
    return ClassificationData(split(n_train), split(n_val), split(n_val), names, "tiny")


def make_trainer(run_dir, **overrides):
    cfg = ClassifyConfig(
        model="resnet_fm", model_kwargs=TINY_MODEL, epochs=2, batch_size=16, progress=False, erase=0.5,
        **overrides,
    )  # fmt: skip
    torch.manual_seed(cfg.seed)
    model = boxer.create_model(cfg.model, num_classes=10, **cfg.model_kwargs)
    return classification_trainer(model, tiny_data(), cfg, run_dir, {"num_classes": 10})


def test_resume_mid_epoch_is_bit_identical(tmp_path):
    straight = make_trainer(tmp_path / "a")
    straight.fit()
    interrupted = make_trainer(tmp_path / "b")
    interrupted.fit(stop_at_iteration=8)  # 6 steps per epoch: stops inside the second epoch
    assert interrupted.state.iteration == 8 and interrupted.state.batch == 2
    torch.manual_seed(1234)  # a fresh process: the checkpoint restores the RNGs
    resumed = make_trainer(tmp_path / "c")
    resumed.resume(tmp_path / "b" / "last")
    resumed.fit()
    assert resumed.state.iteration == straight.state.iteration == 12
    a, c = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
    assert resumed.state.best == straight.state.best


def test_batches_depend_on_seed_epoch_and_position_only():
    batches = SplitBatches(tiny_data().train, batch_size=16, seed=3)
    full = list(batches.epoch(1))
    assert len(full) == batches.batches_per_epoch() == 6
    tail = list(batches.epoch(1, start=4))
    assert [b[3] for b in tail] == [4, 5] and torch.equal(tail[0][0], full[4][0])
    assert not torch.equal(next(iter(batches.epoch(0)))[0], full[0][0])
