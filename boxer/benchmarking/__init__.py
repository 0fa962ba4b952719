"""The efficiency table (`boxer bench`): params, GFLOPs, latency, throughput and peak memory of
models, backbones and token mixers, measured one way and documented with every report."""

from __future__ import annotations

from typing import Any

from boxer.benchmarking.config import BenchConfig

__all__ = ["BenchConfig", "benchmark", "markdown_table", "write_report"]


def __getattr__(name: str) -> Any:
    """The runner's functions, imported on first use (they import torch)."""
    if name in ("benchmark", "markdown_table", "write_report"):
        from boxer.benchmarking import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
