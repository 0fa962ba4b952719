"""Peak memory of one call: CUDA's allocator statistics, or on CPU a dispatch-mode tracker.

CUDA: `torch.cuda.max_memory_allocated` during the call (weights, activations, workspaces).
CPU: a `TorchDispatchMode` records the storage of every tensor an op returns and, after each op,
sums the bytes of the storages still alive (tracked with weak references); the peak of that sum plus
the bytes of the module's parameters and buffers is reported. It sees every tensor an aten op
allocates, but not scratch memory inside a kernel (oneDNN workspaces), so it is a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of storages created under the mode that are still alive; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                key = storage.data_ptr()
                entry = self.live.get(key)
                if entry is None or entry[0].expired():
                    self.live[key] = (StorageWeakRef(storage), storage.nbytes())
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of parameters and buffers."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def peak_memory_bytes(fn: Callable[[], Any], module: torch.nn.Module, device: torch.device) -> int:
    """Peak bytes in use while `fn()` runs (see the module docstring for what is counted)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    tracker = _LiveTensorBytes()
    with tracker:
        result = fn()
    del result
    return tracker.peak + module_bytes(module)
