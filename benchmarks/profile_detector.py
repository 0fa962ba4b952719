"""Per-module profile of a detector's training step: where the CPU time and the saved activations go.

For each contender (the builders of benchmarks/detector.py: `boxer2d_r50`, `deformable_detr`, ...)
one training step at batch 2 (random weights, 10 random boxes per image, as detector.py) is split
into the parts a DETR-family detector is made of:

    backbone, neck (input projections), encoder attention, encoder FFN (+ norms), proposals
    (two-stage), decoder, heads, criterion (losses and matching: the rest of the forward),
    optimizer step

- forward CPU time: `torch.profiler` ranges opened by forward hooks on each part's root modules;
- backward CPU time: every autograd node is charged to the part whose forward op created it (the
  profiler's sequence numbers link a backward node to its forward op);
- saved activations: bytes of the tensors autograd saves for backward while a part runs
  (`torch.autograd.graph.saved_tensors_hooks`; parameters and shared storages counted once, never
  parameters);
- the AdamW step, timed on its own.

    .venv/bin/python benchmarks/profile_detector.py --size 512x512 --threads 1
    .venv/bin/python benchmarks/profile_detector.py --contenders boxer2d_r18_lite --size 256x256 --batch 4

Prints one table per contender and writes benchmarks/results/profile_detector.json. Run it with the
CLI's allocator setting (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736, set here by
re-executing once, as boxer/engine/allocator.py does), pinned to an idle core when the machine is
shared (`taskset -c 0`). Profiler ranges add overhead to small ops: the shares are what to read, the
absolute times are higher than benchmarks/detector.py's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detector import TUNED, build, make_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "profile_detector.json"
PARTS = ["backbone", "neck", "encoder attention", "encoder FFN", "proposals", "decoder", "heads", "criterion"]
# "criterion": the losses, the matching and every op outside the parts' modules


EXACT = {
    "backbone": "backbone",
    "neck": "neck",
    "input_proj": "neck",
    "position_embedding": "neck",
    "transformer.proposals": "proposals",
    "denoising": "proposals",
    "reference_points": "proposals",
    "enc_output": "proposals",
    "enc_output_norm": "proposals",
    "transformer.decoder": "decoder",
    "decoder": "decoder",
    "head": "heads",
    "mask_head": "heads",
    "class_embed": "heads",
    "bbox_embed": "heads",
}
ATTENTION = {"attn", "self_attn"}
FFN = {"ffn", "norm1", "norm2", "mlp", "self_attn_layer_norm", "final_layer_norm"}


def part_of(path: str) -> str | None:
    """The part of a module path (BoxeR-2D and HF Deformable DETR names); None = not a part's root."""
    p = path.removeprefix("model.")
    if p in EXACT:
        return EXACT[p]
    bits = p.split(".")  # transformer.encoder.layers.0.attn / encoder.layers.0.self_attn
    if len(bits) >= 4 and bits[-4:-2] == ["encoder", "layers"]:
        if bits[-1] in ATTENTION:
            return "encoder attention"
        if bits[-1] in FFN:
            return "encoder FFN"
    return None


def roots(model) -> list[tuple[str, str, object]]:
    """(path, part, module) of the outermost modules that belong to a part."""
    from torch.nn import ModuleList

    out, taken = [], []
    for path, mod in model.named_modules():
        if any(path.startswith(t + ".") for t in taken):
            continue
        part = part_of(path)
        if part is not None:
            # a ModuleList is indexed, never called: its members are the roots
            members = list(mod.named_children()) if isinstance(mod, ModuleList) else [("", mod)]
            out.extend((f"{path}.{n}" if n else path, part, m) for n, m in members)
            taken.append(path)
    return out


def profile_step(name: str, h: int, w: int, batch: int) -> dict:
    import torch
    from torch.autograd.graph import saved_tensors_hooks
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    c = build(name, h, w)
    images, targets = make_inputs(batch, h, w, masks=getattr(c, "masks", False))
    model = c.model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    stack, saved, seen = ["criterion"], defaultdict(int), set()
    ranges = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            saved[stack[-1]] += t.untyped_storage().nbytes()
        return t

    def enter(mod, args, part):
        stack.append(part)
        ranges[id(mod)] = record_function(f"## {part}")
        ranges[id(mod)].__enter__()

    def leave(mod, args, out):
        ranges.pop(id(mod)).__exit__(None, None, None)
        stack.pop()

    found = roots(model)
    for _path, part, mod in found:
        mod.register_forward_pre_hook(lambda m, a, part=part: enter(m, a, part))
        mod.register_forward_hook(leave)

    def step():
        opt.zero_grad(set_to_none=True)
        c.loss(images, targets).backward()

    step()  # warm-up
    opt.step()
    saved.clear()
    seen.clear()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with saved_tensors_hooks(pack, lambda t: t):
            step()
    t0 = time.process_time()
    opt.step()
    opt_s = time.process_time() - t0
    return summarise(prof.events(), dict(saved), opt_s, found)


def summarise(events, saved: dict, opt_s: float, found) -> dict:
    """Forward and backward CPU ms per part from the profiler's events."""
    fwd, bwd, seq_part = defaultdict(float), defaultdict(float), {}
    total_fwd = total_bwd = 0.0
    for e in events:
        if e.name.startswith("## ") and _part_range(e) is None:
            fwd[e.name[3:]] += e.cpu_time_total / 1e3
    for e in events:
        if e.sequence_nr >= 0 and not e.name.startswith("autograd::engine"):
            part = _part_range(e) or "criterion"
            seq_part.setdefault(e.sequence_nr, part)
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function"):
            dt = e.cpu_time_total / 1e3
            bwd[seq_part.get(e.sequence_nr, "criterion")] += dt
            total_bwd += dt
        elif e.cpu_parent is None and not e.name.startswith(("autograd::", "## ")):
            total_fwd += e.cpu_time_total / 1e3
    total_fwd += sum(fwd.values())
    fwd["criterion"] += max(0.0, total_fwd - sum(v for k, v in fwd.items() if k != "criterion"))
    rows = [
        {"part": p, "forward_ms": round(fwd[p], 1), "backward_ms": round(bwd[p], 1),
         "saved_mb": round(saved.get(p, 0) / 2**20, 1)}
        for p in PARTS
    ]  # fmt: skip
    rows.append(
        {"part": "optimizer step", "forward_ms": round(opt_s * 1e3, 1), "backward_ms": 0.0, "saved_mb": 0.0}
    )
    return {"rows": rows, "roots": [[path, part] for path, part, _ in found]}


def _part_range(e) -> str | None:
    p = e.cpu_parent
    while p is not None:
        if p.name.startswith("## "):
            return p.name[3:]
        p = p.cpu_parent
    return None


def print_table(name: str, size: str, rows: list[dict]) -> None:
    total = sum(r["forward_ms"] + r["backward_ms"] for r in rows) or 1.0
    print(f"\n{name} {size} training step (CPU ms; share of forward + backward + optimizer)")
    print(f"{'part':<18} {'forward':>9} {'backward':>9} {'share':>6} {'saved MB':>9}")
    for r in rows:
        f, b = r["forward_ms"], r["backward_ms"]
        print(f"{r['part']:<18} {f:>9.1f} {b:>9.1f} {(f + b) / total:>6.1%} {r['saved_mb']:>9.1f}")
    f, b = sum(r["forward_ms"] for r in rows), sum(r["backward_ms"] for r in rows)
    print(f"{'total':<18} {f:>9.1f} {b:>9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contenders", default="boxer2d_r50,deformable_detr", help="comma-separated")
    ap.add_argument("--size", default="512x512", help="HxW (default 512x512)")
    ap.add_argument("--batch", type=int, default=2, help="images per step (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", default=str(RESULTS), help="JSON output (default benchmarks/results/...)")
    a = ap.parse_args()
    if any(os.environ.get(k) != v for k, v in TUNED.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **TUNED})
    import torch

    torch.set_num_threads(a.threads)
    h, w = (int(v) for v in a.size.split("x"))
    results = []
    for name in a.contenders.split(","):
        rec = profile_step(name, h, w, a.batch)
        print_table(name, a.size, rec["rows"])
        results.append({"contender": name, "size": a.size, "batch": a.batch, **rec})
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "threads": a.threads,
        "load_1min": os.getloadavg()[0],
        "torch": torch.__version__,
    }
    from boxer.engine.checkpoint import atomic_write_text

    atomic_write_text(a.out, json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
