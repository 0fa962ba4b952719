"""Export parity of the full lite detectors (random weights, seed 0): ONNX (onnxruntime) and the
torch.export program against `model.predict`, exported at 256 x 256 and run at 320 x 192, batch 2.

Writes benchmarks/results/export_parity.json; the table in docs/export.md. About 3 minutes on 2 CPU cores.
"""

import json
import pathlib
import tempfile
import time

import onnxruntime as ort
import torch

import boxer
from boxer.engine import export as E

res = {}
for name in ["boxer2d_r18_lite", "boxer2d_r18_lite_mask", "detr_r18_lite"]:
    torch.manual_seed(0)
    m = boxer.create_model(name, num_classes=10).eval()
    t = time.time()
    ep, kind = E.export_program(m, 256, 256)
    te = time.time() - t
    path = pathlib.Path(tempfile.mkdtemp()) / f"{name}.onnx"
    t = time.time()
    E.write_onnx(ep, kind, path, with_masks=m.with_masks, metadata={})
    to = time.time() - t
    x = torch.randn(2, 3, 320, 192, generator=torch.Generator().manual_seed(1))
    sz = torch.tensor([[320, 192]] * 2)
    with torch.no_grad():
        ref = m.predict(x, None, [{"orig_size": s} for s in sz])
        pt = ep.module()(x, sz)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    on = [torch.from_numpy(o) for o in sess.run(None, {"images": x.numpy(), "orig_sizes": sz.numpy()})]
    r = {"export_s": round(te, 1), "onnx_s": round(to, 1)}
    for tag, out in (("onnx", on), ("pt2", pt)):
        sc = torch.stack([d["scores"] for d in ref])
        bx = torch.stack([d["boxes"] for d in ref])
        lb = torch.stack([d["labels"] for d in ref])
        r[tag] = {
            "scores_max_abs": float((out[1] - sc).abs().max()),
            "boxes_max_abs_px": float((out[0] - bx).abs().max()),
            "labels_equal": bool(torch.equal(out[2], lb)),
        }
        if m.with_masks:
            mk = torch.stack([d["masks"] for d in ref])
            a, b = out[3], mk
            inter = (a & b).flatten(2).sum(-1).float()
            union = (a | b).flatten(2).sum(-1).float()
            iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))
            r[tag]["mask_iou_min"] = float(iou.min())
            r[tag]["mask_pixels_differing"] = int((a != b).sum())
    res[name] = r
    print(name, json.dumps(r), flush=True)
json.dump(res, open("benchmarks/results/export_parity.json", "w"), indent=1)
