"""The Triton kernels compiled for a real GPU: parity with the reference, forward and backward.

Skipped without CUDA (CI runs the kernels under the interpreter, test_box_attention_triton.py).
Shapes are the BoxeR-2D encoder/decoder levels at a small batch, so the compiled tiling is used.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from boxer.ops import box_attention, instance_attention

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("triton") is None,
    reason="needs CUDA and triton",
)


def _inputs(dtype, B=2, Q=300, H=8, D=32, m=2, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    ss = torch.tensor([[32, 32], [16, 16], [8, 8], [4, 4]], device="cuda")
    S = int((ss[:, 0] * ss[:, 1]).sum())
    L = ss.shape[0]
    value = torch.randn(B, S, H, D, device="cuda", generator=g)
    centre = torch.rand(B, Q, H, L, 2, device="cuda", generator=g) * 1.2 - 0.1
    size = torch.rand(B, Q, H, L, 2, device="cuda", generator=g) * 0.5
    boxes = torch.cat((centre, size), -1)
    weights = torch.rand(B, Q, H, L, m, m, device="cuda", generator=g)
    angles = torch.randn(B, Q, H, L, device="cuda", generator=g)
    return ss, [t.to(dtype).requires_grad_() for t in (value, boxes, weights, angles)]


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-4), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("with_angles", [False, True])
def test_triton_matches_reference_on_gpu(dtype, tol, with_angles):
    ss, (value, boxes, weights, angles) = _inputs(dtype)
    inputs = [value, boxes, weights] + ([angles] if with_angles else [])
    res = {}
    for backend in ("reference", "triton"):
        out = box_attention(
            value, ss, boxes, weights, angles=angles if with_angles else None, backend=backend
        )
        probe = torch.linspace(-1, 1, out.numel(), device="cuda").view_as(out).to(out.dtype)
        res[backend] = [out.float(), *(g.float() for g in torch.autograd.grad((out * probe).sum(), inputs))]
    for name, a, b in zip(("out", "value", "boxes", "weights", "angles"), res["triton"], res["reference"]):
        scale = b.abs().max().clamp_min(1.0)
        if dtype == torch.bfloat16 and name in ("boxes", "angles"):
            # The bilinear gradient w.r.t. a position jumps at pixel borders; bf16 rounding of the
            # position moves a few points across one, so allow a handful of outliers (< 0.1%).
            close = ((a - b).abs() / scale <= tol + tol * (b.abs() / scale)).float().mean()
            assert close >= 0.999, f"{name}: only {close:.5f} of the elements match"
            continue
        torch.testing.assert_close(
            a / scale, b / scale, rtol=tol, atol=tol, msg=lambda m, n=name: f"{n}: {m}"
        )


def test_instance_attention_triton_matches_reference_on_gpu():
    ss, (value, boxes, _, _) = _inputs(torch.float32, Q=20)
    logits = torch.randn(2, 20, 8, 4, 2, 2, device="cuda", requires_grad=True)
    res = {}
    for backend in ("reference", "triton"):
        out, feats = instance_attention(value, ss, boxes, logits, grid_size=14, backend=backend)
        loss = out.sum() + feats.square().sum()
        res[backend] = [out, feats, *torch.autograd.grad(loss, [value, logits])]
    for name, a, b in zip(("out", "feats", "value", "logits"), res["triton"], res["reference"]):
        torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-4, msg=lambda m, n=name: f"{n}: {m}")
