"""The efficiency table (`boxer bench`): params, GFLOPs, latency, throughput and peak memory of
models, backbones and token mixers, measured one way and documented with every report."""

from __future__ import annotations

from boxer.benchmarking.runner import BenchConfig, benchmark, markdown_table, write_report

__all__ = ["BenchConfig", "benchmark", "markdown_table", "write_report"]
