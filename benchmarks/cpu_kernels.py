"""CPU kernel choices of boxer, measured side by side: attention kernels and the AdamW step.

- `boxer.layers.sdpa`: PyTorch's flash vs math kernel for `F.scaled_dot_product_attention`,
  forward + backward, float32 and bfloat16, at three shapes (the BoxeR lite decoder's
  self-attention; windows of 49 tokens; 196 tokens);
- `boxer.engine.optim`: one AdamW step over boxer2d_r18_lite's trainable parameters, the default
  per-tensor loop, `foreach` and `fused`.

Every contender of a row runs in the same process, interleaved over rounds; the figure is the
median of the timed calls.

    .venv/bin/python benchmarks/cpu_kernels.py --threads 1

Writes benchmarks/results/cpu_kernels.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import boxer

SHAPES = {"lite decoder 4x8x130x16": (4, 8, 130, 16), "windows 512x4x49x32": (512, 4, 49, 32),
          "64x4x196x32": (64, 4, 196, 32)}  # fmt: skip


def median_ms(fns: dict, rounds: int) -> dict[str, float]:
    for f in fns.values():
        f()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: round(sorted(v)[len(v) // 2] * 1e3, 2) for k, v in times.items()}


def attention_rows(rounds: int) -> list[dict]:
    rows = []
    for label, shape in SHAPES.items():
        for dtype in (torch.float32, torch.bfloat16):
            q, k, v = (torch.randn(*shape, dtype=dtype, requires_grad=True) for _ in range(3))
            g = torch.randn(*shape, dtype=dtype)

            def run(backend, q=q, k=k, v=v, g=g):
                def f():
                    with sdpa_kernel(backend):
                        F.scaled_dot_product_attention(q, k, v).backward(g)

                return f

            ms = median_ms({"flash": run(SDPBackend.FLASH_ATTENTION), "math": run(SDPBackend.MATH)}, rounds)
            rows.append(
                {"shape": label, "dtype": str(dtype).split(".")[-1], **{f"{k}_ms": v for k, v in ms.items()}}
            )
    return rows


def adamw_row(rounds: int) -> dict:
    model = boxer.create_model("boxer2d_r18_lite", num_classes=10, backbone_kwargs={"frozen_stages": 2})
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p)
    kinds = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    opts = {name: torch.optim.AdamW(params, lr=1e-4, **kw) for name, kw in kinds.items()}
    ms = median_ms({k: o.step for k, o in opts.items()}, rounds)
    return {
        "params_m": round(sum(p.numel() for p in params) / 1e6, 2),
        **{f"{k}_ms": v for k, v in ms.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu_kernels.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    attention, adamw = attention_rows(a.rounds), adamw_row(a.rounds)
    print("attention forward + backward (ms)\n| shape | dtype | flash | math |\n|---|---|---|---|")
    for r in attention:
        print(f"| {r['shape']} | {r['dtype']} | {r['flash_ms']} | {r['math_ms']} |")
    print(f"\nAdamW step over {adamw['params_m']} M parameters (ms): loop {adamw['loop_ms']}, "
          f"foreach {adamw['foreach_ms']}, fused {adamw['fused_ms']}")  # fmt: skip
    record = {
        "benchmark": "cpu_kernels", "command": f"python benchmarks/cpu_kernels.py --threads {a.threads}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_1m": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "threads": a.threads,
        "torch": torch.__version__, "attention": attention, "adamw": adamw,
    }  # fmt: skip
    from boxer.engine.checkpoint import atomic_write_text

    atomic_write_text(a.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
