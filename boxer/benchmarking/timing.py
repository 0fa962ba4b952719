"""Latency and throughput: warm-up calls, then the median of timed repeats.

Method (printed with every table): `warmup` untimed calls, then `repeats` timed calls, each timed
alone with `time.perf_counter` (and `torch.cuda.synchronize` before and after on GPU); we report the
median. Latency = median seconds of one call at batch 1; throughput = batch size / median seconds
of one call at batch N. The JSON also keeps the fastest call (`latency_min_ms`, `throughput_max`):
on a machine shared with other jobs the minimum is the steadier estimate of the model's own cost.
Everything runs under `torch.inference_mode()` with the dtype chosen
(float32 by default; bfloat16 via autocast), on `torch.get_num_threads()` CPU threads.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def call_seconds(
    fn: Callable[[], Any], device: torch.device, *, warmup: int = 2, repeats: int = 5
) -> list[float]:
    """Wall time of each of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def median_seconds(
    fn: Callable[[], Any], device: torch.device, *, warmup: int = 2, repeats: int = 5
) -> float:
    """Median wall time of one call of `fn` after `warmup` untimed calls."""
    return statistics.median(call_seconds(fn, device, warmup=warmup, repeats=repeats))
