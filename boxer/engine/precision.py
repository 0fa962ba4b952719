"""Mixed precision: the autocast context of an `amp` mode, the one spelling `auto|bf16|fp16|none`.

`auto` is bf16 on a GPU and float32 elsewhere, `fp16` trains with a GradScaler on GPU, `none` is
float32 (docs/training.md, the `amp` key). The mode names and their parsing live in `boxer.engine.config`
(torch-free, for the CLI); detection training and evaluation, classification, `boxer bench` and the
benchmarks all enter autocast through `autocast` here.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from boxer.engine.config import amp_mode

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype of `amp` on `device`; None = float32 (no autocast)."""
    amp = amp_mode(amp)
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return _DTYPES.get(amp)


def autocast(device: torch.device | str, amp: str) -> AbstractContextManager:
    """The autocast context of an `amp` mode: bf16/fp16 on request, `auto` = bf16 on GPU only."""
    device = torch.device(device)
    dtype = amp_dtype(device, amp)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
