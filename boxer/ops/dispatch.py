"""Backend choice for the box-attention ops.

Order of precedence: the `backend=` argument, then the `BOXER_BOX_ATTN_BACKEND` environment
variable, then "auto". "auto" picks the Triton kernel for CUDA tensors when `triton` imports,
otherwise the fastest pure-PyTorch path for the device (see docs/ops.md for the measurements
behind the CPU default). Forcing an unavailable backend raises; nothing falls back silently.
The path used is logged once per (backend, device type) on the `boxer.ops` logger.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os

import torch

log = logging.getLogger("boxer.ops")

ENV_VAR = "BOXER_BOX_ATTN_BACKEND"
BACKENDS = ("auto", "reference", "gather", "triton")
CPU_DEFAULT = "gather"  # measured by benchmarks/box_attention.py, see docs/ops.md
_logged: set[tuple[str, str]] = set()


@functools.cache
def triton_available() -> bool:
    """True when the `triton` package can be found (it is imported lazily by the kernel module)."""
    return importlib.util.find_spec("triton") is not None


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """The concrete backend ("reference", "gather" or "triton") for tensors on `device`."""
    requested = backend if backend is not None else os.environ.get(ENV_VAR, "auto") or "auto"
    if requested not in BACKENDS:
        source = "backend" if backend is not None else ENV_VAR
        raise ValueError(f"{source}: unknown box-attention backend {requested!r}; choose from {BACKENDS}")
    if requested == "auto":
        chosen = "triton" if device.type == "cuda" and triton_available() else CPU_DEFAULT
    else:
        chosen = requested
    if chosen == "triton" and not triton_available():
        raise RuntimeError(
            "box-attention backend 'triton' was requested but the triton package is not installed"
        )
    if chosen == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            f"box-attention backend 'triton' needs CUDA tensors (got {device.type}); "
            "set TRITON_INTERPRET=1 before importing triton to run the kernel on the CPU"
        )
    key = (chosen, device.type)
    if key not in _logged:
        _logged.add(key)
        log.info("box-attention backend: %s on %s (requested %s)", chosen, device.type, requested)
    return chosen
