"""CPU allocator tuning: keep glibc malloc from returning large blocks to the OS after every step.

Under glibc's defaults, tensors above the (dynamic) mmap threshold are mmapped and unmapped on every
allocation, so each training step page-faults its activations in again, and freed heap tops are trimmed.
`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736` (no mmap, trim only above 64 GiB) keeps the memory
in the heap: measured by benchmarks/allocator.py (docs/training.md, "CPU allocator"), 1.4-3.7x faster CPU
steps, at the price of a resident size that stays at its peak.

Decision: the `boxer` CLI re-executes itself once, before importing torch, with those two
variables set, for the heavy commands (train, eval, predict, bench). glibc reads them only at
start-up, and `mallopt` cannot express the 64 GiB threshold (its value is a C int), hence the
re-exec rather than an in-process call. It is skipped when:

- `BOXER_NO_MALLOC_TUNING=1` (opt out),
- either variable is already set (the user's values win),
- another allocator is preloaded (`LD_PRELOAD` naming jemalloc, tcmalloc or mimalloc),
- the C library is not glibc, or `main()` was called with an explicit argv (library use, tests).

Child processes (DataLoader workers, torchrun workers, benchmark subprocesses) inherit the setting.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence

TUNED_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
OPT_OUT = "BOXER_NO_MALLOC_TUNING"
MARKER = "BOXER_MALLOC_TUNED"
HEAVY_COMMANDS = frozenset({"train", "eval", "predict", "bench"})
OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def is_glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def status(environ: dict[str, str] | None = None) -> str:
    """A one-line description of the allocator setting of this process."""
    env = os.environ if environ is None else environ
    preload = env.get("LD_PRELOAD", "")
    for name in OTHER_ALLOCATORS:
        if name in preload:
            return f"{name} (LD_PRELOAD)"
    if not is_glibc():
        return "system default (not glibc)"
    set_vars = {k: env[k] for k in TUNED_ENV if k in env}
    if set_vars == TUNED_ENV:
        return "glibc tuned (" + " ".join(f"{k}={v}" for k, v in TUNED_ENV.items()) + ")"
    if set_vars:
        return "glibc, user settings (" + " ".join(f"{k}={v}" for k, v in set_vars.items()) + ")"
    return f"glibc defaults ({OPT_OUT}=1 or not run through the boxer CLI)"


def should_reexec(argv: Sequence[str], environ: dict[str, str] | None = None) -> bool:
    """True when the CLI should restart itself with TUNED_ENV (see the module docstring)."""
    env = os.environ if environ is None else environ
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in HEAVY_COMMANDS or env.get(MARKER) or env.get(OPT_OUT, "") not in ("", "0"):
        return False
    if any(k in env for k in TUNED_ENV):
        return False
    if any(name in env.get("LD_PRELOAD", "") for name in OTHER_ALLOCATORS):
        return False
    return is_glibc()


def tuned_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment with TUNED_ENV (and the loop guard) added."""
    env = dict(os.environ if environ is None else environ)
    env.update(TUNED_ENV)
    env[MARKER] = "1"
    return env


def reexec_if_needed(argv: Sequence[str]) -> None:
    """Replaces this process by itself with the tuned environment when `should_reexec` says so."""
    if not should_reexec(argv):
        return
    args = list(getattr(sys, "orig_argv", []) or [sys.executable, *sys.argv])
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, args, tuned_environ())
    except OSError:
        return  # could not re-exec: carry on untuned rather than fail
