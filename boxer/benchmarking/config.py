"""`BenchConfig`: how `boxer bench` measures (torch-free, so `boxer bench --help` needs no torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BenchConfig:
    """How to measure (documented in every report)."""

    image_size: int = 224
    batch_size: int = 8
    device: str = "cpu"
    amp: str = "none"  # `auto|bf16|fp16|none` (boxer.engine.precision)
    flops_per_mac: int = 1  # 1: the papers' GFLOPs (= GMACs); 2: torch.utils.flop_counter's
    warmup: int = 2
    repeats: int = 5
    threads: int | None = None
    num_classes: int = 80
    mixer_dim: int = 256
    mixer_size: int = 14
    mixer_heads: int = 8
    memory: bool = True
