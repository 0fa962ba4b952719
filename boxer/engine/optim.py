"""Optimiser and LR schedule of the BoxeR-2D recipe (BoxeR, Nguyen et al., CVPR 2022; docs/training.md,
"Configuration").

AdamW (betas 0.9/0.999, eps 1e-9, weight decay on every parameter, as in the official code) over
the model's parameter groups: a model defines `param_groups(lr, *, lr_backbone)` (docs/CONTRACTS.md)
and owns its own multipliers (BoxeR-2D's window-offset Linears at 0.1x `lr`, its
`lr_linear_box_mult` keyword); otherwise the backbone (`backbone.*`) learns at `lr_backbone` (2e-5)
and the rest at `lr` (2e-4). The schedule is a linear warmup from `warmup_factor` over
`warmup_iters` optimiser steps, then x`gamma` at each milestone, counted in epochs or iterations.

Classification and backbone pretraining share `weight_decay_groups` (no decay on norms, biases and
position tables) and `CosineSchedule` (`warmup_cosine`: linear warm-up, cosine by steps or elapsed
time). Both schedules `advance(time_fraction)` once per optimiser step, as the trainer
(boxer/engine/trainer.py) calls them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from boxer.engine.config import TrainConfig


def default_param_groups(model: nn.Module, lr: float, *, lr_backbone: float) -> list[dict[str, Any]]:
    """Groups trainable parameters by name: `backbone.*` at `lr_backbone`, the rest at `lr`."""
    groups: dict[str, list[nn.Parameter]] = {"backbone": [], "rest": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        backbone = name.startswith("backbone.") or ".backbone." in name
        groups["backbone" if backbone else "rest"].append(param)
    lrs = {"backbone": lr_backbone, "rest": lr}
    return [{"params": p, "lr": lrs[k], "name": k} for k, p in groups.items() if p]


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices/kernels only; none on norms, biases and position tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        plain = p.ndim <= 1 or name.endswith(("pos_embed", "_rel", "_abs", "bias_table", "relative_bias"))
        (no_decay if plain else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR multiplier per step: linear warm-up from ~0 to 1, then cosine down to `min_ratio`.

    The returned `factor(step, time_fraction=0.0)` follows the larger of the step progress and
    `time_fraction` (the share of a time budget already spent), so a time-capped run anneals fully.
    """

    def factor(step: int, time_fraction: float = 0.0) -> float:
        if step < warmup_steps and time_fraction < 1.0:
            return (step + 1) / warmup_steps
        progress = max((step - warmup_steps) / max(total_steps - warmup_steps, 1), time_fraction)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class CosineSchedule:
    """`warmup_cosine` applied to the optimiser's groups: rate = base rate x factor(step, time).

    Args:
        optimizer: its groups' current `lr` are taken as the base rates.
        total_steps: optimiser steps planned.
        warmup_steps: linear warm-up length in steps.
        min_ratio: the final rate as a share of the base rate.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int, min_ratio: float
    ) -> None:
        self.optimizer = optimizer
        self.factor = warmup_cosine(total_steps, warmup_steps, min_ratio)
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.steps, self.time_fraction = 0, 0.0
        self._apply()

    def _apply(self) -> None:
        f = self.factor(self.steps, self.time_fraction)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def advance(self, time_fraction: float = 0.0) -> None:
        """One optimiser step done; `time_fraction` is the share of the time cap spent."""
        self.steps, self.time_fraction = self.steps + 1, time_fraction
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "time_fraction": self.time_fraction, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.time_fraction = int(state["steps"]), float(state["time_fraction"])
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self._apply()


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the model's parameter groups (its own `param_groups` when it defines one)."""
    make = getattr(model, "param_groups", None)
    make = make if callable(make) else lambda lr, **kw: default_param_groups(model, lr, **kw)
    groups = make(cfg.lr, lr_backbone=cfg.lr_backbone)
    groups = [g for g in groups if len(list(g["params"])) > 0]
    params = [p for g in groups for p in g["params"]]
    # the fused kernel is one pass over all tensors; on the CPU the default per-tensor loop costs
    # ~3x more (boxer2d_r18_lite's 13 M trainable parameters, one thread: 57.7 vs 17.2 ms,
    # benchmarks/cpu_kernels.py, results/cpu_kernels.json)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW(
        groups,
        lr=cfg.lr,
        betas=tuple(cfg.adam_betas),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
        fused=fused or None,
    )


class WarmupStepSchedule:
    """Linear warmup then step decay; `step()` once per optimiser step.

    Args:
        optimizer: its groups' current `lr` are taken as the base rates.
        milestones: optimiser-step counts at which the rate is multiplied by `gamma`.
        gamma: decay factor.
        warmup_iters: length of the linear warmup in optimiser steps (0 = none).
        warmup_factor: the rate multiplier at step 0 of the warmup.
        planned_iters: with a time cap, `advance(time_fraction)` jumps the schedule to that share
            of these steps when time runs ahead of them (0 = steps only).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        milestones: list[int],
        gamma: float = 0.1,
        warmup_iters: int = 0,
        warmup_factor: float = 0.001,
        planned_iters: int = 0,
    ) -> None:
        self.optimizer = optimizer
        self.planned_iters = planned_iters
        self.milestones = sorted(milestones)
        self.gamma = gamma
        self.warmup_iters = warmup_iters
        self.warmup_factor = warmup_factor
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_iter = 0
        self._apply()

    def factor(self, it: int) -> float:
        decay = self.gamma ** sum(1 for m in self.milestones if it >= m)
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            decay *= self.warmup_factor * (1 - alpha) + alpha
        return decay

    def _apply(self) -> None:
        f = self.factor(self.last_iter)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self, at_least: int = 0) -> None:
        """One optimiser step; `at_least` jumps the schedule ahead (time-capped runs)."""
        self.last_iter = max(self.last_iter + 1, at_least)
        self._apply()

    def advance(self, time_fraction: float = 0.0) -> None:
        """One optimiser step; with `planned_iters`, at least `time_fraction` of them."""
        self.step(int(min(time_fraction, 1.0) * self.planned_iters))

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_iter": self.last_iter, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_iter = int(state["last_iter"])
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self._apply()


def build_schedule(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, *, iters_per_epoch: int, total_iters: int = 0
) -> WarmupStepSchedule:
    """The schedule of `cfg`, with epoch milestones converted to optimiser steps; with
    `time_schedule` and `max_minutes`, time moves it along `total_iters` planned steps too."""
    scale = iters_per_epoch if cfg.lr_step_unit == "epoch" else 1
    timed = cfg.time_schedule and cfg.max_minutes
    return WarmupStepSchedule(
        optimizer,
        milestones=[s * scale for s in cfg.lr_steps],
        gamma=cfg.lr_gamma,
        warmup_iters=cfg.warmup_iters,
        warmup_factor=cfg.warmup_factor,
        planned_iters=total_iters if timed else 0,
    )
