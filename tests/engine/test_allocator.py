"""The CPU allocator decision: when the CLI restarts itself with the tuned glibc settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from boxer.engine import allocator

GLIBC = allocator.is_glibc()


@pytest.mark.parametrize(
    "argv, env, expected",
    [
        (["train", "--data", "x"], {}, GLIBC),
        (["-v", "eval"], {}, GLIBC),
        (["models"], {}, False),
        (["data", "check"], {}, False),
        (["train"], {"BOXER_NO_MALLOC_TUNING": "1"}, False),
        (["train"], {"BOXER_NO_MALLOC_TUNING": "0"}, GLIBC),
        (["train"], {"MALLOC_MMAP_MAX_": "65536"}, False),
        (["train"], {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, False),
        (["train"], {allocator.MARKER: "1"}, False),
    ],
)
def test_should_reexec(argv, env, expected):
    assert allocator.should_reexec(argv, env) is expected


def test_status_lines():
    assert allocator.status({**allocator.TUNED_ENV}).startswith("glibc tuned" if GLIBC else "system")
    assert allocator.status({"LD_PRELOAD": "libjemalloc.so"}) == "jemalloc (LD_PRELOAD)"


def _child(extra_env: dict[str, str]) -> str:
    code = (
        "import os; from boxer.engine.allocator import reexec_if_needed; reexec_if_needed(['train']); "
        "print(os.environ.get('MALLOC_MMAP_MAX_'), os.environ.get('MALLOC_TRIM_THRESHOLD_'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != allocator.MARKER}
    env.pop(allocator.OPT_OUT, None)
    done = subprocess.run(
        [sys.executable, "-c", code], env={**env, **extra_env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="the re-exec applies to glibc only")
def test_reexec_sets_the_environment_once():
    assert _child({}) == "0 68719476736"
    assert _child({"BOXER_NO_MALLOC_TUNING": "1"}) == "None None"
