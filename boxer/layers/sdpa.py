"""`F.scaled_dot_product_attention` with the CPU kernel chosen by measurement.

On the CPU PyTorch runs its flash kernel. In bfloat16/float16 that kernel's forward + backward is
2-3x slower than the math kernel on short sequences and faster again on longer ones; in float32
flash is the faster one throughout (`benchmarks/cpu_kernels.py --threads 1`, 2-core Intel Xeon,
2026-12-03, benchmarks/results/cpu_kernels.json: bf16, 4 x 8 heads x 130 tokens x 16 channels, the
BoxeR lite decoder's self-attention, 13.9 vs 5.9 ms; 512 windows x 4 heads x 49 tokens 315 vs
119 ms; 64 x 4 x 196 tokens 118 vs 178 ms). So half-precision CPU calls with at most
`MATH_MAX_KEYS` keys use the math kernel; everything else is PyTorch's choice. Both compute
softmax(q k^T / sqrt(d) + mask) v.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

MATH_MAX_KEYS = 160


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, *, attn_mask: Tensor | None = None, dropout_p: float = 0.0
) -> Tensor:
    """Tensor[*, h, Nq, d] attention of q: Tensor[*, h, Nq, d] over k, v: Tensor[*, h, Nk, d]."""
    short_half_cpu = (
        q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and k.shape[-2] <= MATH_MAX_KEYS
    )
    if short_half_cpu and not torch.compiler.is_compiling():
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
