"""The efficiency table: params, GFLOPs, latency (batch 1), throughput (batch N), peak memory.

`benchmark(specs, BenchConfig(...))` measures each target in turn and returns one row per target;
`write_report` saves the markdown table and the JSON (rows + method) atomically. See `timing.py`,
`flops.py` and `memory.py` for how each figure is obtained.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from boxer.benchmarking.flops import count_flops
from boxer.benchmarking.memory import peak_memory_bytes
from boxer.benchmarking.targets import Target, build_target
from boxer.benchmarking.timing import call_seconds
from boxer.errors import BoxerError

COLUMNS = [
    ("name", "model", "{}"),
    ("input", "input", "{}"),
    ("params_m", "params (M)", "{:.2f}"),
    ("gflops", "GFLOPs", "{:.3f}"),
    ("gmacs", "GMACs", "{:.3f}"),
    ("latency_ms", "latency b=1 (ms)", "{:.1f}"),
    ("throughput", "throughput (img/s)", "{:.1f}"),
    ("peak_mem_mib", "peak mem (MiB)", "{:.0f}"),
]


@dataclass
class BenchConfig:
    """How to measure (documented in every report)."""

    image_size: int = 224
    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"
    warmup: int = 2
    repeats: int = 5
    threads: int | None = None
    num_classes: int = 80
    mixer_dim: int = 256
    mixer_size: int = 14
    mixer_heads: int = 8
    memory: bool = True


def _autocast(cfg: BenchConfig, device: torch.device):
    if cfg.dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def measure(target: Target, cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """One row of the table for `target`."""
    params = sum(p.numel() for p in target.module.parameters())
    with torch.inference_mode(), _autocast(cfg, device):
        one, many = target.make_call(1), target.make_call(cfg.batch_size)
        flops = count_flops(one)
        single = call_seconds(one, device, warmup=cfg.warmup, repeats=cfg.repeats)
        batched = call_seconds(many, device, warmup=cfg.warmup, repeats=cfg.repeats)
        peak = peak_memory_bytes(many, target.module, device) if cfg.memory else None
    return {
        "name": target.name,
        "kind": target.kind,
        "input": target.input_desc,
        "params_m": params / 1e6,
        "gflops": flops / 1e9,
        "gmacs": flops / 2e9,  # multiply-adds: the "GFLOPs" of the efficient-ViT deck and timm
        "latency_ms": statistics.median(single) * 1e3,
        "throughput": cfg.batch_size / statistics.median(batched),
        "latency_min_ms": min(single) * 1e3,
        "throughput_max": cfg.batch_size / min(batched),
        "peak_mem_mib": peak / 2**20 if peak is not None else None,
        "batch_size": cfg.batch_size,
    }


def benchmark(specs: list[str], cfg: BenchConfig, *, log=print) -> list[dict[str, Any]]:
    """Measures every spec (`NAME`, `backbone:NAME`, `mixer:NAME`); returns the rows in order."""
    if cfg.dtype not in ("float32", "bfloat16"):
        raise BoxerError(f"--dtype: expected float32 or bfloat16, got {cfg.dtype!r}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise BoxerError(f"--device: {cfg.device} requested but CUDA is not available")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    rows = []
    for spec in specs:
        torch.manual_seed(0)
        target = build_target(
            spec,
            device=device,
            image_size=cfg.image_size,
            num_classes=cfg.num_classes,
            mixer_dim=cfg.mixer_dim,
            mixer_size=cfg.mixer_size,
            mixer_heads=cfg.mixer_heads,
        )
        rows.append(measure(target, cfg, device))
        log(format_row(rows[-1]))
        del target
    return rows


def method(cfg: BenchConfig) -> dict[str, Any]:
    """The measurement settings and machine, stored with every report."""
    return {
        **asdict(cfg),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": __import__("os").cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "latency": "median of `repeats` timed calls at batch 1 after `warmup` untimed calls",
        "throughput": "batch_size / median seconds of one call at batch_size",
        "flops": "torch.utils.flop_counter at batch 1, forward; multiply-add = 2 FLOPs",
        "gmacs": "gflops / 2: a multiply-add counted once (the efficient-ViT deck's and timm's convention)",
        "memory_method": (
            "CUDA: max_memory_allocated; CPU: peak bytes of live aten outputs + weights (lower bound)"
        ),
    }


def format_row(row: dict[str, Any]) -> str:
    cells = [fmt.format(row[key]) if row.get(key) is not None else "-" for key, _, fmt in COLUMNS]
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows: list[dict[str, Any]], cfg: BenchConfig) -> str:
    head = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    m = method(cfg)
    note = (
        f"\n{m['device']}, {m['dtype']}, {m['threads']} threads, batch {cfg.batch_size} for throughput "
        f"and memory; "
        f"median of {cfg.repeats} runs after {cfg.warmup} warm-up; torch {m['torch']}; {m['date']}.\n"
    )
    return "\n".join([head, rule, *map(format_row, rows)]) + "\n" + note


def write_report(rows: list[dict[str, Any]], cfg: BenchConfig, prefix: str | Path) -> tuple[Path, Path]:
    """Writes PREFIX.md and PREFIX.json atomically; returns their paths."""
    from boxer.engine.checkpoint import atomic_write_text

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    md, js = prefix.with_suffix(".md"), prefix.with_suffix(".json")
    atomic_write_text(md, markdown_table(rows, cfg))
    atomic_write_text(js, json.dumps({"method": method(cfg), "rows": rows}, indent=2) + "\n")
    return md, js
