"""The efficiency table: params, GFLOPs, latency (batch 1), throughput (batch N), peak memory.

`benchmark(specs, BenchConfig(...))` measures each target in turn and returns one row per target;
`write_report` saves the markdown table and the JSON (rows + method) atomically. See `timing.py`,
`flops.py` and `memory.py` for how each figure is obtained.

FLOP convention: by default one multiply-add is one FLOP (`flops_per_mac=1`), as torchvision, timm
and the papers report (ResNet-50 at 224: 4.1 GFLOPs); `flops_per_mac=2` gives the count of
`torch.utils.flop_counter` (8.2). The table header and the report's `method` name the convention; each
JSON row has `gflops` (in it) and `gmacs` (multiply-adds, whatever the convention).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from boxer.benchmarking.config import BenchConfig
from boxer.benchmarking.flops import count_flops
from boxer.benchmarking.memory import peak_memory_bytes
from boxer.benchmarking.targets import Target, build_target
from boxer.benchmarking.timing import call_seconds
from boxer.engine.config import AMP_MODES, amp_mode
from boxer.engine.precision import autocast
from boxer.errors import BoxerError

COLUMNS = [
    ("name", "model", "{}"),
    ("input", "input", "{}"),
    ("params_m", "params (M)", "{:.2f}"),
    ("gflops", "GFLOPs", "{:.3f}"),
    ("latency_ms", "latency b=1 (ms)", "{:.1f}"),
    ("throughput", "throughput (img/s)", "{:.1f}"),
    ("peak_mem_mib", "peak mem (MiB)", "{:.0f}"),
]


def measure(target: Target, cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """One row of the table for `target`."""
    params = sum(p.numel() for p in target.module.parameters())
    with torch.inference_mode(), autocast(device, cfg.amp):
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
        "gflops": flops * cfg.flops_per_mac / 2e9,  # torch's counter: a multiply-add is 2 FLOPs
        "gmacs": flops / 2e9,
        "latency_ms": statistics.median(single) * 1e3,
        "throughput": cfg.batch_size / statistics.median(batched),
        "latency_min_ms": min(single) * 1e3,
        "throughput_max": cfg.batch_size / min(batched),
        "peak_mem_mib": peak / 2**20 if peak is not None else None,
        "batch_size": cfg.batch_size,
    }


def benchmark(specs: list[str], cfg: BenchConfig, *, log=print) -> list[dict[str, Any]]:
    """Measures every spec (`NAME`, `backbone:NAME`, `mixer:NAME`); returns the rows in order."""
    if amp_mode(cfg.amp) not in AMP_MODES:
        raise BoxerError(f"--amp: expected one of {', '.join(AMP_MODES)}, got {cfg.amp!r}")
    if cfg.flops_per_mac not in (1, 2):
        raise BoxerError(f"--flops-per-mac: expected 1 or 2, got {cfg.flops_per_mac!r}")
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
        "flops": f"torch.utils.flop_counter at batch 1, forward; {flop_convention(cfg)}",
        "gmacs": "multiply-adds (torch.utils.flop_counter's FLOPs / 2), whatever the convention",
        "memory_method": (
            "CUDA: max_memory_allocated; CPU: peak bytes of live aten outputs + weights (lower bound)"
        ),
    }


def flop_convention(cfg: BenchConfig) -> str:
    """The FLOP convention in words, as the table and the report state it."""
    if cfg.flops_per_mac == 1:
        return "1 multiply-add = 1 FLOP (torchvision, timm, the papers)"
    return "1 multiply-add = 2 FLOPs (torch.utils.flop_counter)"


def table_head(cfg: BenchConfig) -> str:
    """The header line and rule of the table; the GFLOPs column names its convention."""
    mac = "1 MAC = 1 FLOP" if cfg.flops_per_mac == 1 else "1 MAC = 2 FLOPs"
    titles = [f"{title} ({mac})" if key == "gflops" else title for key, title, _ in COLUMNS]
    return "| " + " | ".join(titles) + " |\n|" + "|".join("---" for _ in COLUMNS) + "|"


def table_note(cfg: BenchConfig) -> str:
    """The line under the table: how, where and when it was measured."""
    m = method(cfg)
    return (
        f"{m['device']}, amp {m['amp']}, {m['threads']} threads, batch {cfg.batch_size} for throughput "
        f"and memory; median of {cfg.repeats} runs after {cfg.warmup} warm-up; GFLOPs: "
        f"{flop_convention(cfg)}; torch {m['torch']}; {m['date']}."
    )


def format_row(row: dict[str, Any]) -> str:
    cells = [fmt.format(row[key]) if row.get(key) is not None else "-" for key, _, fmt in COLUMNS]
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows: list[dict[str, Any]], cfg: BenchConfig) -> str:
    return "\n".join([table_head(cfg), *map(format_row, rows)]) + "\n\n" + table_note(cfg) + "\n"


def write_report(rows: list[dict[str, Any]], cfg: BenchConfig, prefix: str | Path) -> tuple[Path, Path]:
    """Writes PREFIX.md and PREFIX.json atomically; returns their paths."""
    from boxer.engine.checkpoint import atomic_write_text

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    md, js = prefix.with_suffix(".md"), prefix.with_suffix(".json")
    atomic_write_text(md, markdown_table(rows, cfg))
    atomic_write_text(js, json.dumps({"method": method(cfg), "rows": rows}, indent=2) + "\n")
    return md, js
