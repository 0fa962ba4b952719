"""Data loaders whose order and augmentation depend only on (seed, epoch, index).

That makes a resumed run see exactly the batches an uninterrupted run would have seen, whatever
the number of workers: the sampler is a seeded per-epoch permutation that can skip the batches
already consumed, and every sample's transforms run under RNGs seeded from (seed, epoch, index)
(python `random`, numpy and torch), restored afterwards so the main process's RNG is untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from boxer.engine.distributed import DistInfo, ResumableDistributedSampler
from boxer.engine.rng import sample_seed, seeded_rng


class EpochSeededDataset(Dataset):
    """Wraps a dataset so that `ds[(epoch, i)]` draws its augmentation from a per-sample seed."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with seeded_rng(sample_seed(self.seed, epoch, index)):
            return self.dataset[index]


class TrainLoader:
    """Epoch-indexed, resumable training batches.

    Args:
        dataset: the training dataset.
        batch_size: images per process and micro-batch.
        collate_fn: builds a batch from samples.
        info: rank and world size.
        seed: base seed of order and augmentation.
        workers: DataLoader worker processes.
        drop_last: drop the last incomplete batch (kept when the dataset is smaller than a batch).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        collate_fn: Callable,
        info: DistInfo,
        seed: int,
        workers: int = 0,
        drop_last: bool = True,
    ) -> None:
        per_rank = math.ceil(len(dataset) / info.world_size)
        self.drop_last = drop_last and per_rank >= batch_size
        self.sampler = ResumableDistributedSampler(
            dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=False
        )
        self.batch_size = batch_size
        self.dataset = EpochSeededDataset(dataset, seed)
        self.collate_fn = collate_fn
        self.workers = workers
        self.seed = seed
        self.pin = info.device.type == "cuda"

    def batches_per_epoch(self) -> int:
        n = self.sampler.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch(self, epoch: int, start_batch: int = 0) -> DataLoader:
        """The loader of `epoch`, starting after its first `start_batch` batches."""
        self.sampler.set_epoch(epoch, start=start_batch * self.batch_size)
        batches = BatchSampler(self.sampler, self.batch_size, drop_last=self.drop_last)
        return DataLoader(
            self.dataset,
            batch_sampler=batches,
            collate_fn=self.collate_fn,
            num_workers=self.workers,
            pin_memory=self.pin,
            generator=torch.Generator().manual_seed(self.seed + epoch),
            persistent_workers=False,
        )


def eval_loader(
    dataset: Dataset, *, batch_size: int, collate_fn: Callable, info: DistInfo, workers: int = 0
) -> DataLoader:
    """Sequential loader over this process's shard (rank::world) of `dataset`."""
    indices = list(range(info.rank, len(dataset), info.world_size))
    return DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_fn,
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
    )
