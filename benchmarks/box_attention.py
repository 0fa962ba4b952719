"""Box-attention op: our CPU path vs the per-level grid_sample formulation (and Triton on a GPU).

Shapes (docs/ops.md, "Benchmark"), B=2, H=8, D=32, levels 64^2, 32^2, 16^2, 8^2 (a 512x512 image), m=2:

- `encoder`: Q = all 5,440 tokens, each with a window of 4 cells of its own level (docs/boxer2d.md,
  `neck.py`);
- `decoder`: Q = 300 random proposals.

Windows get the module's initial offsets (shift/grow by U(0,1)/8), weights a softmax per head.
Contenders (each from boxes to the [B, Q, H*D] output, so both pay for the grid geometry):

- `ours`: `boxer.ops.box_attention` on the CPU default backend (`gather`);
- `grid_sample`: the per-level `F.grid_sample` loop under autograd (what Deformable-DETR-style
  code falls back to; `boxer.ops.reference.core_reference`);
- on CUDA only: `triton` (our kernel) against `grid_sample` on the GPU.

Every (contender, mode) runs in a fresh subprocess, under both glibc allocator settings
(`default`: MALLOC_* unset; `tuned`: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736), in
alternating rounds so that load from other processes hits all alike. Time = median over all
timed repeats (after warm-up) of the rounds; `forward` runs under no_grad, `fwd+bwd` is a forward
with grad plus backward to value, boxes and weights. Peak memory on the CPU = the subprocess's RSS
high-water mark (VmHWM, reset through /proc/self/clear_refs after the inputs are built and one
tiny call has loaded everything lazy) minus its RSS at that point: the extra resident memory the
op needs at its peak. (tracemalloc does not see torch's allocations.) On CUDA:
`torch.cuda.max_memory_allocated` above the inputs.

    .venv/bin/python benchmarks/box_attention.py                 # full run (a few minutes)
    .venv/bin/python benchmarks/box_attention.py --repeats 3 --rounds 1   # quick look

Writes benchmarks/results/box_attention.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "box_attention.json"
TUNED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
SETTINGS = ("default", "tuned")
LEVELS = [(64, 64), (32, 32), (16, 16), (8, 8)]
B, H, D, M = 2, 8, 32, 2


# ----------------------------------------------------------------------------- worker side
def make_inputs(shape: str, device: str):
    """value [B, S, H, D], spatial_shapes, boxes [B, Q, H, L, 4], weights [B, Q, H, L, m, m]."""
    import torch

    gen = torch.Generator().manual_seed(0)
    L, S = len(LEVELS), sum(h * w for h, w in LEVELS)
    if shape == "encoder":
        refs = []
        for h, w in LEVELS:
            ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
            size = torch.tensor([4 / w, 4 / h]).expand(h * w, 2)
            refs.append(torch.cat((xs.reshape(-1, 1), ys.reshape(-1, 1), size), -1))
        ref = torch.cat(refs)[None].expand(B, -1, -1)  # B, S, 4
    else:
        ref = torch.cat(
            (torch.rand(B, 300, 2, generator=gen), 0.05 + 0.45 * torch.rand(B, 300, 2, generator=gen)), -1
        )
    Q = ref.shape[1]
    r = ref[:, :, None, None]  # B, Q, 1, 1, 4
    delta = torch.rand(B, Q, H, L, 4, generator=gen)
    boxes = torch.cat(
        (r[..., :2] + delta[..., :2] * r[..., 2:] / 8, r[..., 2:] * (1 + delta[..., 2:] / 8)), -1
    )
    weights = torch.randn(B, Q, H, L * M * M, generator=gen).softmax(-1).view(B, Q, H, L, M, M)
    value = torch.randn(B, S, H, D, generator=gen)
    to = dict(device=device)
    return value.to(**to), torch.tensor(LEVELS, **to), boxes.contiguous().to(**to), weights.to(**to)


def contender(name: str):
    from boxer.ops import box_attention
    from boxer.ops.dispatch import CPU_DEFAULT
    from boxer.ops.geometry import sampling_locations
    from boxer.ops.reference import core_reference

    if name == "grid_sample":

        def run(value, ss, boxes, weights):
            shapes = [tuple(x) for x in ss.tolist()]
            loc = sampling_locations(boxes, weights.shape[-1]).flatten(4, 5)
            out = core_reference(value, shapes, loc, weights.flatten(4))  # B, Q, H, D
            return out.reshape(*out.shape[:2], -1)

        return run
    backend = {"ours": CPU_DEFAULT, "triton": "triton"}[name]
    return lambda value, ss, boxes, weights: box_attention(value, ss, boxes, weights, backend=backend)


def rss_mib(field: str = "VmRSS") -> float:
    """Resident (VmRSS) or high-water (VmHWM) memory of this process, MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def reset_high_water() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False if the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(args) -> None:
    import resource

    import torch

    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    value, ss, boxes, weights = make_inputs(args.shape, args.device)
    fn = contender(args.contender)
    inputs = [value, boxes, weights]
    if args.mode == "fwdbwd":
        inputs = [t.requires_grad_() for t in inputs]

    def step():
        if args.mode == "forward":
            with torch.no_grad():
                fn(value, ss, boxes, weights)
        else:
            out = fn(inputs[0], ss, inputs[1], inputs[2])
            torch.autograd.grad(out, inputs, torch.ones_like(out))

    # prime lazy imports and one-off initialisation on a tiny problem, then measure from here
    tiny = [
        t[:1, : (None if t is value else 8)].detach().clone().requires_grad_(t.requires_grad) for t in inputs
    ]
    small = fn(tiny[0], ss, tiny[1], tiny[2])
    if args.mode == "fwdbwd":
        small.sum().backward()
    del small, tiny
    base = rss_mib()
    exact_peak = reset_high_water()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    times = []
    for i in range(args.warmup + args.repeats):
        sync()
        start = time.perf_counter()
        step()
        sync()
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1000)
    high = rss_mib("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = high - base
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    print("RESULT " + json.dumps({"times_ms": times, "peak_mib": peak, "threads": torch.get_num_threads()}))


# ----------------------------------------------------------------------------- driver side
def environment(setting: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if setting == "tuned":
        env.update(TUNED)
    return env


def run_worker(contender_name, shape, mode, setting, device, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--contender",
        contender_name,
        "--shape",
        shape,
        "--mode",
        mode,
    ]
    cmd += ["--device", device, "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, env=environment(setting), capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {contender_name}/{shape}/{mode}/{setting} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def measure(contenders, device, settings, args) -> dict:
    raw: dict = {}
    for rnd in range(args.rounds):
        for shape in args.shapes:
            for setting in settings:
                order = contenders if rnd % 2 == 0 else contenders[::-1]
                for name in order:
                    for mode in ("forward", "fwdbwd"):
                        res = run_worker(name, shape, mode, setting, device, args)
                        entry = raw.setdefault((shape, setting, name, mode), {"times_ms": [], "peak_mib": []})
                        entry["times_ms"] += res["times_ms"]
                        entry["peak_mib"].append(res["peak_mib"])
                        entry["threads"] = res["threads"]
                        print(
                            f"  round {rnd} {device} {shape:8s} {setting:8s} {name:12s} {mode:7s} "
                            f"{statistics.median(res['times_ms']):9.1f} ms",
                            flush=True,
                        )
    return raw


def summarise(raw, device, baseline) -> list[dict]:
    rows = []
    keys = sorted({k[:3] for k in raw})
    for shape, setting, name in keys:
        f, fb = raw[(shape, setting, name, "forward")], raw[(shape, setting, name, "fwdbwd")]
        rows.append(
            dict(
                device=device,
                shape=shape,
                allocator=setting,
                contender=name,
                threads=fb["threads"],
                forward_ms=statistics.median(f["times_ms"]),
                fwdbwd_ms=statistics.median(fb["times_ms"]),
                forward_peak_mib=max(f["peak_mib"]),
                fwdbwd_peak_mib=max(fb["peak_mib"]),
            )
        )
    for row in rows:
        base = next(
            r
            for r in rows
            if (r["shape"], r["allocator"], r["contender"]) == (row["shape"], row["allocator"], baseline)
        )
        row["forward_ratio"] = row["forward_ms"] / base["forward_ms"]
        row["fwdbwd_ratio"] = row["fwdbwd_ms"] / base["fwdbwd_ms"]
        row["fwdbwd_peak_ratio"] = row["fwdbwd_peak_mib"] / max(base["fwdbwd_peak_mib"], 1e-9)
    return rows


def print_table(rows) -> None:
    head = (
        f"{'device':6s} {'shape':8s} {'alloc':8s} {'contender':12s} {'fwd ms':>9s} {'fwd+bwd ms':>11s} "
        f"{'fwd MiB':>8s} {'f+b MiB':>8s} {'fwd x':>6s} {'f+b x':>6s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['device']:6s} {r['shape']:8s} {r['allocator']:8s} {r['contender']:12s} "
            f"{r['forward_ms']:9.1f} "
            f"{r['fwdbwd_ms']:11.1f} {r['forward_peak_mib']:8.1f} {r['fwdbwd_peak_mib']:8.1f} "
            f"{r['forward_ratio']:6.2f} {r['fwdbwd_ratio']:6.2f}"
        )
    print("x = time / grid_sample time at the same shape and allocator setting (lower is better)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per worker (default 1: on a shared machine every OpenMP region of a "
        "2-thread run waits for a descheduled thread, which swamps the op itself)",
    )
    p.add_argument("--shapes", nargs="+", default=["encoder", "decoder"], choices=["encoder", "decoder"])
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--contender", help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    import torch

    rows = summarise(measure(["ours", "grid_sample"], "cpu", SETTINGS, args), "cpu", "grid_sample")
    gpu_note = "skipped: no CUDA device in this session"
    if torch.cuda.is_available():
        rows += summarise(
            measure(["triton", "grid_sample"], "cuda", ("default",), args), "cuda", "grid_sample"
        )
        gpu_note = f"ran on {torch.cuda.get_device_name()}"
    print()
    print_table(rows)
    print(f"GPU (Triton vs PyTorch grid_sample): {gpu_note}")
    report = dict(
        benchmark="box_attention",
        command="python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=dict(
            platform=platform.platform(),
            processor=platform.processor(),
            cpus=os.cpu_count(),
            torch=torch.__version__,
            python=platform.python_version(),
        ),
        config=dict(
            B=B, H=H, D=D, m=M, levels=LEVELS, repeats=args.repeats, warmup=args.warmup, rounds=args.rounds
        ),
        memory_method="CPU: VmHWM (reset after inputs + a tiny priming call) minus RSS then; "
        "CUDA: max_memory_allocated minus allocated after inputs",
        allocator_settings={"default": "MALLOC_* unset", "tuned": TUNED},
        gpu=gpu_note,
        rows=rows,
    )
    from boxer.engine.checkpoint import atomic_write_text

    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
