"""boxer.layers.sdpa: the kernel choice changes the speed, not the function."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from boxer.layers.sdpa import MATH_MAX_KEYS, scaled_dot_product_attention


def _explicit(q, k, v, mask):
    logits = (q.float() @ k.float().transpose(-1, -2)) / q.shape[-1] ** 0.5
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return torch.softmax(logits, -1) @ v.float()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("keys", [7, MATH_MAX_KEYS + 40])
def test_equals_the_formula_and_torch(dtype, keys):
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 5, 8, generator=gen).to(dtype)
    k, v = (torch.randn(2, 3, keys, 8, generator=gen).to(dtype) for _ in range(2))
    mask = torch.rand(2, 1, 5, keys, generator=gen) > 0.3
    mask[..., 0] = True
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(out.float(), _explicit(q, k, v, mask), **tol)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **tol)


def test_gradients_match_torch_in_bfloat16():
    gen = torch.Generator().manual_seed(1)
    qkv = [torch.randn(4, 8, 30, 16, generator=gen).bfloat16().requires_grad_() for _ in range(3)]
    ref = [t.detach().clone().requires_grad_() for t in qkv]
    g = torch.randn(4, 8, 30, 16, generator=gen).bfloat16()
    scaled_dot_product_attention(*qkv).backward(g)
    F.scaled_dot_product_attention(*ref).backward(g)
    for a, b in zip(qkv, ref):
        torch.testing.assert_close(a.grad.float(), b.grad.float(), atol=3e-2, rtol=3e-2)
