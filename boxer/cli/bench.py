"""`boxer bench`: the efficiency table (params, GFLOPs, latency, throughput, peak memory).

The table is printed once, a row as soon as it is measured; GFLOPs count a multiply-add once unless
`--flops-per-mac 2` (boxer.benchmarking.runner).
"""

from __future__ import annotations

import argparse
import time

from boxer.engine.config import AMP_HELP, AMP_MODES, amp_mode

_DTYPE_TO_AMP = {"float32": "none", "bfloat16": "bf16"}  # the deprecated --dtype


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from boxer.benchmarking import BenchConfig

    d = BenchConfig()
    p = sub.add_parser(
        "bench",
        help="efficiency table of models, backbones and token mixers",
        description="Measure params, GFLOPs (torch.utils.flop_counter; by default a multiply-add is "
        "one FLOP, as torchvision, timm and the papers count: ResNet-50 at 224 is 4.1), latency at batch "
        "1, throughput at --batch-size and peak memory. Latency/throughput: median of --repeats timed "
        "calls after --warmup untimed ones, under inference_mode. Prints a markdown table and writes "
        "PREFIX.md and PREFIX.json.",
    )
    p.add_argument(
        "--models", help="comma-separated: registered models, backbone:NAME entries (default: none)"
    )
    p.add_argument(
        "--mixers",
        help="comma-separated token mixers, measured alone at --mixer-dim x --mixer-size^2 (default: none)",
    )
    p.add_argument("--image-size", type=int, default=d.image_size, help="square input side for models")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="batch for throughput and memory")
    p.add_argument("--device", default=d.device, help="cpu or cuda[:i]")
    p.add_argument("--amp", type=amp_mode, choices=AMP_MODES, default=d.amp, help=AMP_HELP)
    p.add_argument(
        "--dtype",
        choices=tuple(_DTYPE_TO_AMP),
        help="deprecated: float32 = --amp none, bfloat16 = --amp bf16 (default: unset, --amp decides)",
    )
    p.add_argument(
        "--flops-per-mac",
        type=int,
        choices=(1, 2),
        default=d.flops_per_mac,
        help="1: a multiply-add is one FLOP (torchvision, timm, the papers); "
        "2: torch.utils.flop_counter's count",
    )
    p.add_argument("--warmup", type=int, default=d.warmup, help="untimed calls before timing")
    p.add_argument("--repeats", type=int, default=d.repeats, help="timed calls (the median is reported)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--num-classes", type=int, default=d.num_classes, help="classes of detectors")
    p.add_argument("--mixer-dim", type=int, default=d.mixer_dim, help="channels of a mixer's input")
    p.add_argument("--mixer-size", type=int, default=d.mixer_size, help="side of a mixer's token map")
    p.add_argument("--mixer-heads", type=int, default=d.mixer_heads, help="attention heads of a mixer")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument(
        "--out", metavar="PREFIX", help="report path without suffix (default runs/bench/bench-<time>)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boxer.benchmarking import BenchConfig, benchmark, write_report
    from boxer.benchmarking.runner import table_head, table_note
    from boxer.errors import BoxerError

    specs = _names(args.models) + [f"mixer:{m}" for m in _names(args.mixers)]
    if not specs:
        raise BoxerError("bench: give --models and/or --mixers")
    if args.batch_size < 1 or args.image_size < 1 or args.repeats < 1 or args.warmup < 0:
        raise BoxerError("bench: --batch-size, --image-size, --repeats must be >= 1 and --warmup >= 0")
    cfg = BenchConfig(
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        amp=_DTYPE_TO_AMP[args.dtype] if args.dtype else args.amp,
        flops_per_mac=args.flops_per_mac,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
        num_classes=args.num_classes,
        mixer_dim=args.mixer_dim,
        mixer_size=args.mixer_size,
        mixer_heads=args.mixer_heads,
        memory=not args.no_memory,
    )
    print(table_head(cfg), flush=True)
    rows = benchmark(specs, cfg, log=lambda line: print(line, flush=True))
    print(f"\n{table_note(cfg)}")
    md, js = write_report(rows, cfg, args.out or f"runs/bench/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"wrote {md} and {js}")
    return 0
