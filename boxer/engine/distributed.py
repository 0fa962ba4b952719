"""Distributed training helpers: torchrun environment, DDP wrapping, a resumable sampler.

Under `torchrun` (RANK / WORLD_SIZE / LOCAL_RANK in the environment) the process group starts with
NCCL on GPUs and gloo on CPU. Each process sees `batch_size` images; the criterion all-reduces
num_boxes itself. `ResumableDistributedSampler` is torch's DistributedSampler (same seeded
per-epoch permutation and rank sharding) that can start mid-epoch and yields `(epoch, index)` so
that each sample's augmentation is seeded by its position, not by worker or process history.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from boxer.errors import BoxerError


@dataclass
class DistInfo:
    """Where this process sits: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """`auto` -> the local GPU when there is one, else CPU."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise BoxerError("config: device=cuda but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(preference: str = "auto") -> DistInfo:
    """Joins the torchrun process group when launched by torchrun; single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference, local)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def cleanup(*, failed: bool = False) -> None:
    """Leaves the process group: after a barrier when all went well (gloo aborts on a one-sided
    teardown), at once after a failure (the other processes may never reach the barrier)."""
    if dist.is_initialized():
        if not failed:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def wrap_model(model: nn.Module, info: DistInfo, *, find_unused_parameters: bool = False) -> nn.Module:
    """DDP around `model` when distributed (gradients averaged over processes); else `model`."""
    if not info.distributed:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Averages scalar values over processes (identity when not distributed)."""
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / dist.get_world_size()).tolist()))


def any_true(flag: bool, device: torch.device) -> bool:
    """True when `flag` is true on any process."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order (a one-item list when not distributed)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler yielding `(epoch, index)` and able to skip the first samples of an epoch.

    Args:
        dataset: anything with `len()`.
        num_replicas: world size.
        rank: this process's rank.
        shuffle: seeded permutation per epoch (seed + epoch), identical on every process.
        seed: base seed.
        drop_last: drop the tail so every process gets the same count (else pad by repeating).
    """

    def __init__(self, dataset, *, num_replicas: int, rank: int, shuffle: bool, seed: int, drop_last: bool):
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Selects the epoch's permutation and skips its first `start` samples of this process."""
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.start :]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.start
