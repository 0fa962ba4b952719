"""The training loop, through detection and through a toy task: exact resume, gradient accumulation,
the time cap, non-finite losses, atomic checkpoints, metrics.jsonl."""

from __future__ import annotations

import json

import pytest
import torch
from fakes import TinyDetection, TinyDetector, collate

from boxer.engine.checkpoint import load_checkpoint
from boxer.engine.config import TrainConfig
from boxer.engine.detection import detection_trainer
from boxer.engine.optim import CosineSchedule
from boxer.engine.rng import seed_everything
from boxer.engine.task import LoopConfig, Task
from boxer.engine.trainer import NonFiniteLoss, Trainer


def make_trainer(tmp_path, *, n=10, model_kw=None, evaluate_fn=None, **overrides) -> Trainer:
    values = dict(
        epochs=2, batch_size=2, workers=0, lr=1e-2, lr_backbone=1e-3, progress=False, clip_max_norm=0.1
    )
    cfg = TrainConfig.from_dict({**values, **overrides}).validate()
    seed_everything(cfg.seed)
    model = TinyDetector(**(model_kw or {}))
    ds = TinyDetection(n)
    meta = {"cat_ids": ds.cat_ids, "class_names": ds.class_names, "num_classes": ds.num_classes}
    return detection_trainer(
        cfg, model, ds, collate_fn=collate, run_dir=tmp_path, evaluate_fn=evaluate_fn, meta=meta
    )


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("stop_at, accum, workers", [(7, 1, 0), (2, 2, 2)])
def test_resume_is_bit_identical(tmp_path, stop_at, accum, workers):
    straight = make_trainer(tmp_path / "a", accum_steps=accum, lr_steps=[1], warmup_iters=2)
    straight.fit()
    interrupted = make_trainer(tmp_path / "b", accum_steps=accum, lr_steps=[1], warmup_iters=2)
    interrupted.fit(stop_at_iteration=stop_at)
    assert interrupted.state.iteration == stop_at
    assert not torch.equal(interrupted.model.linear_box.weight, straight.model.linear_box.weight)
    torch.manual_seed(1234)  # a fresh process: different global RNG until the checkpoint restores it
    resumed = make_trainer(tmp_path / "c", accum_steps=accum, lr_steps=[1], warmup_iters=2, workers=workers)
    resumed.resume(tmp_path / "b" / "last")
    resumed.fit()
    assert resumed.state.iteration == straight.state.iteration
    assert_identical(weights(resumed), weights(straight))
    opt_a, opt_c = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for k in opt_a:
        assert torch.equal(opt_a[k]["exp_avg_sq"], opt_c[k]["exp_avg_sq"])


def test_accumulation_matches_larger_batch(tmp_path):
    big = make_trainer(tmp_path / "a", batch_size=4, epochs=1, n=8, model_kw={"dropout": 0.0})
    big.fit()
    small = make_trainer(
        tmp_path / "b", batch_size=2, accum_steps=2, epochs=1, n=8, model_kw={"dropout": 0.0}
    )
    small.fit()
    assert big.state.iteration == small.state.iteration == 2
    for k, v in weights(big).items():
        torch.testing.assert_close(weights(small)[k], v, rtol=1e-5, atol=1e-6)


def test_param_groups_and_schedule_reach_the_optimizer(tmp_path):
    t = make_trainer(tmp_path, lr=2e-4, lr_backbone=2e-5, warmup_iters=0)
    lrs = {g["name"]: g["lr"] for g in t.optimizer.param_groups}
    assert lrs == pytest.approx({"backbone": 2e-5, "linear_box": 2e-5, "rest": 2e-4})
    assert all(g["eps"] == 1e-9 and g["weight_decay"] == 1e-4 for g in t.optimizer.param_groups)


def test_run_directory_is_self_describing(tmp_path):
    calls = []

    def evaluate(model):
        calls.append(1)
        return {"bbox/AP": 0.1 * len(calls), "bbox/AP50": 0.2}

    t = make_trainer(tmp_path, epochs=2, evaluate_fn=evaluate)
    t.fit()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert {"train/loss", "train/loss_ce", "lr", "bbox/AP"} <= lines[0].keys()
    assert list((tmp_path / "tb").iterdir()), "no TensorBoard events"
    last, best = load_checkpoint(tmp_path / "last"), load_checkpoint(tmp_path / "best")
    assert last.config["cat_ids"] == [1, 2, 3] and last.config["epoch"] == 2
    assert best.state["best"] == pytest.approx(0.2)
    assert last.state["iteration"] == 10 and last.state["epoch"] == 2 and last.state["batch"] == 0


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    t = make_trainer(tmp_path, epochs=3, model_kw={"nan_at_call": 7})
    with pytest.raises(NonFiniteLoss) as err:
        t.fit()
    message = str(err.value)
    assert "loss_bbox=nan" in message and "image ids [" in message and "left untouched" in message
    assert "\n" not in message
    kept = load_checkpoint(tmp_path / "last")
    assert kept.state["iteration"] == 5  # end of epoch 1; the failing step never ran
    assert all(torch.isfinite(v).all() for v in kept.weights.values())


def test_resume_refuses_a_weights_only_checkpoint(tmp_path):
    from boxer.errors import BoxerError

    t = make_trainer(tmp_path / "a", epochs=1)
    t.fit()
    (t.run_dir / "last" / "state.pt").unlink()
    with pytest.raises(BoxerError, match="no training state"):
        make_trainer(tmp_path / "b").resume(tmp_path / "a" / "last")


def test_max_minutes_stops_early_then_evaluates(tmp_path):
    t = make_trainer(tmp_path, epochs=5, max_minutes=1e-9, evaluate_fn=lambda model: {"bbox/AP": 0.5})
    record = t.fit()
    assert t.state.iteration == 1 and record["epoch"] == 1 and record["bbox/AP"] == 0.5
    assert load_checkpoint(tmp_path / "best").state["iteration"] == 1


@pytest.mark.parametrize("time_schedule", [False, True])
def test_time_schedule_reaches_the_lr_drop_under_a_time_cap(tmp_path, time_schedule):
    # 5 epochs x 5 iterations planned, LR x0.1 at iteration 20; a cap that stops after 1 iteration.
    t = make_trainer(
        tmp_path, epochs=5, max_minutes=1e-9, lr_steps=[20], lr_step_unit="iter", time_schedule=time_schedule
    )
    t.fit()
    assert t.state.iteration == 1
    rest = [g["lr"] for g in t.optimizer.param_groups if g["name"] == "rest"][0]
    assert rest == pytest.approx(1e-3 if time_schedule else 1e-2)


# ---------------------------------------------------------------- the Trainer with a toy task


class ToyBatches:
    """Random regression batches fixed by (epoch, index): 4 per epoch."""

    def batches_per_epoch(self) -> int:
        return 4

    def epoch(self, epoch: int, start: int = 0):
        for index in range(start, 4):
            g = torch.Generator().manual_seed(100 * epoch + index)
            x = torch.randn(8, 3, generator=g)
            yield x, x.sum(-1, keepdim=True)


class ToyTask(Task):
    """A linear model with dropout (so RNG restore matters); `nan_at` poisons that step's loss."""

    tensorboard = False

    def __init__(self, nan_at: int | None = None) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(3, 1))
        self.nan_at, self.calls = nan_at, 0

    def train_batches(self, info):
        return ToyBatches()

    def build_optimizer(self, model):
        return torch.optim.AdamW(model.parameters(), lr=0.05)

    def build_schedule(self, optimizer, *, iters_per_epoch, total_iters):
        return CosineSchedule(optimizer, total_steps=total_iters, warmup_steps=2, min_ratio=0.1)

    def losses(self, net, batch, device):
        self.calls += 1
        x, y = batch
        loss = torch.nn.functional.mse_loss(net(x), y)
        return {"loss": loss * float("nan") if self.calls == self.nan_at else loss}

    def describe(self, batch) -> str:
        return "toy batch"

    def evaluate(self, model):
        return {"score": -sum(float(p.detach().abs().sum()) for p in model.parameters())}


def toy_trainer(run_dir, task=None, **loop) -> Trainer:
    settings = dict(epochs=3, device="cpu", progress=False, best_metric="score", clip_max_norm=1.0)
    return Trainer(task or ToyTask(), LoopConfig(**{**settings, **loop}), run_dir=run_dir)


@pytest.mark.parametrize("accum", [1, 2])
def test_toy_task_resumes_bit_identically(tmp_path, accum):
    straight = toy_trainer(tmp_path / "a", accum_steps=accum)
    straight.fit()
    half = straight.state.iteration // 2
    first = toy_trainer(tmp_path / "b", accum_steps=accum)
    first.fit(stop_at_iteration=half)
    torch.manual_seed(7)  # as a fresh process would be
    second = toy_trainer(tmp_path / "b", accum_steps=accum)  # into the same run, as --resume does
    second.resume(tmp_path / "b" / "last")
    second.fit()
    assert second.state.iteration == straight.state.iteration == 12 // accum
    assert_identical(weights(second), weights(straight))
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


@pytest.mark.parametrize("clock", ["run", "training"])
def test_toy_task_time_cap_stops_and_anneals(tmp_path, clock):
    t = toy_trainer(tmp_path, epochs=50, max_minutes=1e-9, clock=clock)
    record = t.fit()
    assert t.stopped_by_time and t.state.iteration == 1 and record["epoch"] == 1
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.1)  # the cosine's end
    if clock == "training":  # a resumed run whose training time is spent trains no more
        again = toy_trainer(tmp_path / "again", epochs=50, max_minutes=1e-9, clock=clock)
        again.resume(tmp_path / "last")
        again.fit()
        assert again.state.iteration == 1


def test_toy_task_non_finite_loss_stops_before_the_step(tmp_path):
    t = toy_trainer(tmp_path, task=ToyTask(nan_at=6))
    with pytest.raises(NonFiniteLoss, match="epoch 2, iteration 6: loss=nan; toy batch; last good") as err:
        t.fit()
    assert "\n" not in str(err.value)
    kept = load_checkpoint(tmp_path / "last")
    assert kept.state["iteration"] == 4 and t.state.iteration == 5  # step 6 never ran
    assert all(torch.isfinite(v).all() for v in weights(t).values())


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    t = toy_trainer(tmp_path, epochs=2)
    t.fit()
    before = (tmp_path / "last").resolve()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        t.save("last")
    assert (tmp_path / "last").resolve() == before
    assert load_checkpoint(tmp_path / "last").state["iteration"] == 8
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


def test_without_a_run_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = toy_trainer(None, epochs=2)
    t.fit()
    assert t.state.iteration == 8 and list(tmp_path.iterdir()) == []
