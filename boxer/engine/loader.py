"""Data loaders whose order and augmentation depend only on (seed, epoch, index).

That makes a resumed run see exactly the batches an uninterrupted run would have seen, whatever
the number of workers: the sampler is a seeded per-epoch permutation that can skip the batches
already consumed, and every sample's transforms run under RNGs seeded from (seed, epoch, index)
(python `random`, numpy and torch), restored afterwards so the main process's RNG is untouched.

A sample that fails to load (in a worker process or not) travels to the main process as a
`LoadFailure` holding one line naming the image, instead of the worker's traceback; `check_batch`
raises it there as a `DataLoadError`. Workers ignore SIGINT / SIGTERM: the main process decides
how to stop (docs/training.md, "Interrupting and resuming").
"""

from __future__ import annotations

import logging
import math
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from boxer.engine.distributed import DistInfo, ResumableDistributedSampler
from boxer.engine.rng import sample_seed, seeded_rng
from boxer.errors import BoxerError

log = logging.getLogger(__name__)


class DataLoadError(BoxerError):
    """A sample could not be loaded; the message names the image."""


@dataclass
class LoadFailure:
    """Stands in for a sample (or a batch) that failed to load: one line, and the traceback for -v."""

    message: str
    detail: str = ""


def describe_sample(dataset: Any, index: int) -> str:
    """The image file of sample `index` when the dataset knows it (COCO datasets), else `sample i`."""
    try:
        return str(dataset.images_dir / dataset.images[index]["file_name"])
    except (AttributeError, IndexError, KeyError, TypeError):
        return f"sample {index} of {type(dataset).__name__}"


def load_sample(dataset: Any, index: int) -> Any:
    """`dataset[index]`, or a LoadFailure naming the image."""
    try:
        return dataset[index]
    except BoxerError as err:
        return LoadFailure(" ".join(str(err).split("\n")), traceback.format_exc())
    except Exception as err:  # noqa: BLE001 - reported with the image's name, traceback kept for -v
        reason = " ".join(str(err).split()) or "no message"
        message = f"{describe_sample(dataset, index)}: cannot load ({type(err).__name__}: {reason})"
        return LoadFailure(message, traceback.format_exc())


class SafeCollate:
    """`collate_fn` that passes a LoadFailure of any sample on instead of failing on it."""

    def __init__(self, collate_fn: Callable) -> None:
        self.collate_fn = collate_fn

    def __call__(self, samples: list[Any]) -> Any:
        failed = next((s for s in samples if isinstance(s, LoadFailure)), None)
        return failed if failed is not None else self.collate_fn(samples)


def check_batch(batch: Any) -> Any:
    """The batch itself; raises DataLoadError when a sample of it failed to load."""
    if isinstance(batch, LoadFailure):
        log.debug("the failed sample's traceback:\n%s", batch.detail)
        raise DataLoadError(batch.message)
    return batch


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: Ctrl-C reaches the whole process group; only the main process acts.

    SIGTERM keeps its default: the DataLoader's shutdown and multiprocessing's exit handler stop
    workers with it, and a worker that ignored it would leave its parent waiting forever at exit.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Reported(Dataset):
    """`dataset[i]` through `load_sample` (for the eval loader)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return load_sample(self.dataset, index)


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
            return load_sample(self.dataset, index)


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
            collate_fn=SafeCollate(self.collate_fn),
            num_workers=self.workers,
            worker_init_fn=ignore_stop_signals if self.workers else None,
            pin_memory=self.pin,
            generator=torch.Generator().manual_seed(self.seed + epoch),
            persistent_workers=False,
        )


def eval_loader(
    dataset: Dataset, *, batch_size: int, collate_fn: Callable, info: DistInfo, workers: int = 0
) -> DataLoader:
    """Sequential loader over this process's shard (rank::world) of `dataset`; see `check_batch`."""
    indices = list(range(info.rank, len(dataset), info.world_size))
    return DataLoader(
        torch.utils.data.Subset(_Reported(dataset), indices),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=SafeCollate(collate_fn),
        num_workers=workers,
        worker_init_fn=ignore_stop_signals if workers else None,
        pin_memory=info.device.type == "cuda",
    )
