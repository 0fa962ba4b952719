"""The Triton kernels, forward and backward, under the Triton interpreter on the CPU.

TRITON_INTERPRET=1 must be set before triton is imported, so the check runs in a subprocess
(the rest of the suite never imports triton). Shapes are tiny: the interpreter runs every
program in Python (a few seconds here).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import torch
from boxer.ops import box_attention, instance_attention

torch.manual_seed(0)
ss = torch.tensor([[3, 4], [1, 1]])
B, Q, H, D, L = 1, 3, 2, 3, 2
for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
    value = torch.randn(B, 13, H, D, dtype=dtype)
    boxes = torch.cat((torch.rand(B, Q, H, L, 2) * 1.6 - 0.3, torch.rand(B, Q, H, L, 2)), -1).to(dtype)
    boxes[0, 0, 0, 0] = torch.tensor([2.0, 2.0, 0.1, 0.1])  # fully outside
    boxes[0, 1, 0, 0, 2:] = 0.0  # zero size
    weights = torch.rand(B, Q, H, L, 2, 2, dtype=dtype)
    angles = torch.randn(B, Q, H, L, dtype=dtype)
    inputs = [t.requires_grad_() for t in (value, boxes, weights, angles)]
    res = {}
    for backend in ("reference", "triton"):
        out = box_attention(inputs[0], ss, inputs[1], inputs[2], angles=inputs[3], backend=backend)
        probe = torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)
        res[backend] = [out, *torch.autograd.grad((out * probe).sum(), inputs)]
    for name, a, b in zip(("out", "value", "boxes", "weights", "angles"), res["triton"], res["reference"]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m: f"box {dtype} {name}: {m}")
    logits = torch.randn(B, 1, H, L, 2, 2, dtype=dtype, requires_grad=True)
    inst = {}
    for backend in ("reference", "triton"):
        out, feats = instance_attention(inputs[0], ss, inputs[1][:, :1], logits, grid_size=2, backend=backend)
        loss = out.sum() + feats.square().sum()
        inst[backend] = [out, feats, *torch.autograd.grad(loss, [inputs[0], logits])]
    for name, a, b in zip(("out", "feats", "value", "logits"), inst["triton"], inst["reference"]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m: f"instance {dtype} {name}: {m}")
print("TRITON-INTERPRETER-PARITY-OK")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_kernels_match_reference_under_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "BOXER_BOX_ATTN_BACKEND": "auto"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TRITON-INTERPRETER-PARITY-OK" in proc.stdout
