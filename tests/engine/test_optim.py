"""Optimiser groups and the warmup + step schedule."""

from __future__ import annotations

import pytest
import torch
from fakes import TinyDetector

from boxer.engine.config import TrainConfig
from boxer.engine.optim import WarmupStepSchedule, build_optimizer, build_schedule


def test_schedule_warmup_then_steps():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupStepSchedule(opt, milestones=[10, 15], warmup_iters=4, warmup_factor=0.001)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(20):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.001) and lrs[2] == pytest.approx(0.5005)
    assert lrs[4:10] == pytest.approx([1.0] * 6)
    assert lrs[10] == pytest.approx(0.1) and lrs[15] == pytest.approx(0.01)
    state = sched.state_dict()
    again = WarmupStepSchedule(opt, milestones=[10, 15], warmup_iters=4)
    again.load_state_dict(state)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_epoch_milestones_become_iterations():
    model = TinyDetector()
    cfg = TrainConfig(lr_steps=[2], lr_step_unit="epoch")
    sched = build_schedule(build_optimizer(model, cfg), cfg, iters_per_epoch=5)
    assert sched.milestones == [10]


def test_model_param_groups_are_used_when_defined():
    model = TinyDetector()
    model.param_groups = lambda lr, *, lr_backbone: [{"params": list(model.parameters()), "lr": lr * 0.1}]
    opt = build_optimizer(model, TrainConfig(lr=1.0))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_schedule_jumps_ahead_for_time_capped_runs():
    import torch

    from boxer.engine.optim import WarmupStepSchedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupStepSchedule(opt, milestones=[10], gamma=0.1)
    sched.step()
    assert sched.last_iter == 1 and opt.param_groups[0]["lr"] == 1.0
    sched.step(at_least=12)  # time says we are past the milestone
    assert sched.last_iter == 12 and abs(opt.param_groups[0]["lr"] - 0.1) < 1e-12
    sched.step(at_least=3)  # never goes back
    assert sched.last_iter == 13


def test_models_without_param_groups_get_backbone_and_rest():
    model = torch.nn.Module()
    model.backbone, model.linear_box = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = build_optimizer(model, TrainConfig(lr=1.0, lr_backbone=0.5))
    assert [(g["name"], g["lr"], len(g["params"])) for g in opt.param_groups] == [
        ("backbone", 0.5, 2),
        ("rest", 1.0, 2),
    ]


def test_the_old_top_level_linear_box_key_moves_to_the_model():
    assert TrainConfig.from_dict({"lr_linear_box_mult": 0.1}).model_kwargs == {}  # the default: dropped
    cfg = TrainConfig.from_dict({"lr_linear_box_mult": "0.2"})
    assert cfg.model_kwargs == {"lr_linear_box_mult": 0.2}
