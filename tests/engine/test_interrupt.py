"""Nothing lost: `last` before evaluation, Ctrl-C / SIGTERM at an iteration boundary, broken samples."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from fakes import TinyDetection
from test_trainer import assert_identical, make_trainer, weights

from boxer.engine.checkpoint import load_checkpoint
from boxer.engine.loader import DataLoadError
from boxer.engine.trainer import TrainingInterrupted
from boxer.errors import BoxerError


def signal_after(trainer, iteration: int, signum: int) -> None:
    """Sends `signum` to this process right after optimiser step `iteration`."""
    step = trainer._optimizer_step

    def step_then_signal():
        step()
        if trainer.state.iteration == iteration:
            os.kill(os.getpid(), signum)

    trainer._optimizer_step = step_then_signal


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_last_at_the_next_boundary_and_resume_is_exact(tmp_path, signum):
    kw = dict(lr_steps=[1], warmup_iters=2)
    straight = make_trainer(tmp_path / "a", **kw)
    straight.fit()
    before = signal.getsignal(signum)
    interrupted = make_trainer(tmp_path / "b", **kw)
    signal_after(interrupted, 3, signum)
    with pytest.raises(TrainingInterrupted) as err:
        interrupted.fit()
    assert signal.getsignal(signum) is before, "the handler is removed after fit"
    message = str(err.value)
    assert err.value.exit_code == 130 and "\n" not in message
    assert f"{signal.Signals(signum).name}: stopped at epoch 1, iteration 3" in message
    assert f"{tmp_path / 'b' / 'last'} holds iteration 3" in message and "--resume" in message
    assert load_checkpoint(tmp_path / "b" / "last").state["iteration"] == 3
    torch.manual_seed(99)
    resumed = make_trainer(tmp_path / "c", **kw)
    resumed.resume(tmp_path / "b" / "last")
    resumed.fit()
    assert_identical(weights(resumed), weights(straight))


def test_an_interrupt_before_the_first_step_says_nothing_was_saved(tmp_path):
    t = make_trainer(tmp_path)

    def interrupted(*args):
        raise KeyboardInterrupt

    t._accumulate = interrupted
    with pytest.raises(TrainingInterrupted, match="nothing was saved yet"):
        t.fit()
    assert not (tmp_path / "last").exists()


def test_last_is_written_before_evaluation(tmp_path):
    def broken_eval(model):
        raise BoxerError("val/000003.png: cannot read image id 3 (truncated)")

    t = make_trainer(tmp_path, epochs=2, evaluate_fn=broken_eval)
    with pytest.raises(BoxerError, match="000003.png"):
        t.fit()
    kept = load_checkpoint(tmp_path / "last")
    assert kept.state["epoch"] == 1 and kept.state["iteration"] == 5 and kept.state["batch"] == 0
    resumed = make_trainer(tmp_path / "again", epochs=2)
    resumed.resume(tmp_path / "last")
    resumed.fit()
    assert resumed.state.iteration == 10


class BreaksLater(TinyDetection):
    """Samples fail to load once `flag` exists (an image that goes bad while training runs)."""

    def __init__(self, n: int, flag) -> None:
        super().__init__(n)
        self.flag = flag

    def __getitem__(self, i: int):
        if self.flag.exists():
            raise OSError(f"image file is truncated ({i})\nsecond line")
        return super().__getitem__(i)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_sample_that_fails_to_load_is_one_line_and_last_is_kept(tmp_path, workers):
    flag = tmp_path / "broken"
    t = make_trainer(tmp_path / "run", workers=workers)
    t.loader.dataset.dataset = BreaksLater(10, flag)
    step = t._optimizer_step

    def step_then_break():
        step()
        if t.state.iteration == 1:
            flag.touch()

    t._optimizer_step = step_then_break
    with pytest.raises(DataLoadError) as err:
        t.fit()
    message = str(err.value)
    assert "sample" in message and "OSError: image file is truncated" in message
    assert "\n" not in message and "Traceback" not in message
    assert load_checkpoint(tmp_path / "run" / "last").state["iteration"] >= 1


def test_resume_that_does_not_fit_is_one_line(tmp_path):
    make_trainer(tmp_path / "a", epochs=1).fit()
    other = make_trainer(tmp_path / "b", model_kw={"num_classes": 5})
    with pytest.raises(BoxerError, match="does not fit this model") as err:
        other.resume(tmp_path / "a" / "last")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "b").exists(), "a failed resume writes nothing"


def test_the_bar_of_the_last_epoch_ends_at_max_iters(tmp_path):
    t = make_trainer(tmp_path, epochs=5, max_iters=7)
    totals = []
    t.logger.start_epoch = lambda epoch, epochs, total, initial: totals.append((epochs, total, initial))
    t.fit()
    assert totals == [(2, 5, 0), (2, 2, 0)] and t.state.iteration == 7
