"""EMS: efficient multi-scale spatial interactions (EMSNet, the efficient-ViT deck's
"Proposed Networks"; docs/zoo.md, "The efficient-ViT deck beside ours").

The map is seen at several scales at once. Each scale p is a depthwise patch embedding (kernel =
stride = p); the finer coarse map is mixed by convolution-based MHSA (C-MHSA: each token attends
over its k x k neighbourhood with logits from learnable matrices), the coarsest by global MHSA
(G-MHSA, ViT's attention: few tokens, so cheap); each mixed map is propagated back to full
resolution by a depthwise transposed convolution (kernel = stride = p). The full-resolution input
and the propagated maps are concatenated and fused by a channel MLP (two 1x1 layers).

What the deck leaves open, and what is chosen here:
- scales: patch sizes (2, 4) (`patch_sizes`); every scale but the last uses C-MHSA, the last G-MHSA;
  the identity (p = 1) branch joins the fusion.
- C-MHSA: the slide names "M, N: learnable matrices, k: kernel size, h: heads". Here M is a
  per-head matrix Tensor[h, d, k*k] turning a query into logits over its k*k neighbours (an
  input-dependent, softmax-normalised depthwise kernel, like involution), the values are a linear
  projection of the neighbours, and N is the output projection. Neighbours beyond the border are
  masked, not zero-padded into the softmax.
- a map whose side is not a multiple of p is zero-padded (bottom/right) before the embedding and the
  propagated map is cropped back; the padded tokens take part in G-MHSA (they are few).
- no "gated aggregation", "mean" or "CoordDW" branches of the deck's ablation table: the deck does not
  describe them beyond their names.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, map_to_tokens, tokens_to_map


class PatchEmbedDW(nn.Module):
    """Depthwise conv with kernel = stride = p, as a reshape and a per-channel weighted sum (the
    same function as `nn.Conv2d(C, C, p, p, groups=C)`; torch's CPU depthwise kernels for this
    case train ~5x slower). Tensor[B, C, H, W] (H, W multiples of p) -> Tensor[B, C, H/p, W/p]."""

    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        conv = nn.Conv2d(dim, dim, patch, stride=patch, groups=dim)  # PyTorch's default init
        self.weight, self.bias = nn.Parameter(conv.weight.detach()[:, 0]), nn.Parameter(conv.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        p = self.patch
        patches = x.view(B, C, H // p, p, W // p, p)
        return torch.einsum("bcyixj,cij->bcyx", patches, self.weight) + self.bias[:, None, None]


class PatchPropagateDW(nn.Module):
    """Depthwise transposed conv with kernel = stride = p: every coarse token spreads over its p x p
    cell with per-channel weights (the function of `nn.ConvTranspose2d(C, C, p, p, groups=C)`, as a
    broadcast product). Tensor[B, C, h, w] -> Tensor[B, C, h*p, w*p]."""

    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        conv = nn.ConvTranspose2d(dim, dim, patch, stride=patch, groups=dim)
        self.weight, self.bias = nn.Parameter(conv.weight.detach()[:, 0]), nn.Parameter(conv.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        B, C, h, w = x.shape
        p = self.patch
        cells = x[:, :, :, None, :, None] * self.weight[None, :, None, :, None, :]  # B, C, h, p, w, p
        return cells.reshape(B, C, h * p, w * p) + self.bias[:, None, None]


class ConvMHSA(nn.Module):
    """C-MHSA: each token attends over its k x k neighbours; logits = q . M (learnable, per head).

    Args:
        dim: channels.
        num_heads: heads.
        kernel_size: neighbourhood side k (odd).
        qkv_bias: bias in the q / v projections.
    """

    def __init__(self, dim: int, *, num_heads: int = 2, kernel_size: int = 3, qkv_bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"C-MHSA: kernel_size must be odd, got {kernel_size}")
        if dim % num_heads:
            raise ValueError(f"C-MHSA: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim, self.kernel_size = num_heads, dim // num_heads, kernel_size
        self.query = nn.Linear(dim, dim, bias=qkv_bias)
        self.value = nn.Linear(dim, dim, bias=qkv_bias)
        self.key_matrix = nn.Parameter(  # M: Tensor[h, d, k*k]
            trunc_normal_(torch.empty(num_heads, self.head_dim, kernel_size**2), std=0.02)
        )
        self.proj = nn.Linear(dim, dim)  # N

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        B, C, H, W = x.shape
        k, h, d = self.kernel_size, self.num_heads, self.head_dim
        tokens = map_to_tokens(x)  # B, HW, C
        q = self.query(tokens).view(B, H * W, h, d).transpose(1, 2)  # B, h, HW, d
        logits = torch.einsum("bnqd,ndk->bnqk", q * d**-0.5, self.key_matrix)  # B, h, HW, k*k
        inside = F.unfold(x.new_ones(1, 1, H, W), k, padding=k // 2)[0].t() > 0  # HW, k*k
        attn = logits.masked_fill(~inside, float("-inf")).softmax(-1)
        attn = attn.transpose(2, 3).reshape(B, h, k * k, 1, H, W)  # offsets row-major, as unfold
        r = k // 2
        v = F.pad(tokens_to_map(self.value(tokens), H, W).view(B, h, d, H, W), (r, r, r, r))
        out = sum(  # the k*k shifted value maps, each weighted by its attention: B, h, d, H, W
            attn[:, :, i * k + j] * v[..., i : i + H, j : j + W] for i in range(k) for j in range(k)
        )
        return tokens_to_map(self.proj(map_to_tokens(out.flatten(1, 2))), H, W)


class GlobalMHSA(nn.Module):
    """G-MHSA: plain global multi-head self-attention on a (coarse) map."""

    def __init__(self, dim: int, *, num_heads: int = 2, qkv_bias: bool = True) -> None:
        super().__init__()
        self.core = AttentionCore(dim, num_heads=num_heads, qkv_bias=qkv_bias)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        return tokens_to_map(self.core(map_to_tokens(x)), *x.shape[-2:])


class EMSMixer(nn.Module):
    """Multi-scale spatial interactions (see the module docstring).

    Args:
        dim: channels.
        num_heads: heads of C-MHSA and G-MHSA.
        patch_sizes: the coarse scales, finest first; the last one uses global attention.
        kernel_size: C-MHSA neighbourhood side.
        feat_size: unused (accepted by every mixer).
        qkv_bias: bias in the attention projections.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 2,
        patch_sizes: Sequence[int] = (2, 4),
        kernel_size: int = 3,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if not patch_sizes or min(patch_sizes) < 2:
            raise ValueError(f"EMS: patch_sizes must be >= 2, got {tuple(patch_sizes)}")
        self.patch_sizes = tuple(patch_sizes)
        self.embeds = nn.ModuleList(PatchEmbedDW(dim, p) for p in self.patch_sizes)
        last = len(self.patch_sizes) - 1
        self.mixers = nn.ModuleList(
            GlobalMHSA(dim, num_heads=num_heads, qkv_bias=qkv_bias)
            if i == last
            else ConvMHSA(dim, num_heads=num_heads, kernel_size=kernel_size, qkv_bias=qkv_bias)
            for i in range(len(self.patch_sizes))
        )
        self.propagate = nn.ModuleList(PatchPropagateDW(dim, p) for p in self.patch_sizes)
        self.fc1 = nn.Conv2d(dim * (len(self.patch_sizes) + 1), dim, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        H, W = x.shape[-2:]
        branches = [x]
        for p, embed, mixer, prop in zip(self.patch_sizes, self.embeds, self.mixers, self.propagate):
            coarse = embed(F.pad(x, (0, (-W) % p, 0, (-H) % p)))  # B, C, ceil(H/p), ceil(W/p)
            branches.append(prop(mixer(coarse))[..., :H, :W])  # B, C, H, W
        return self.fc2(self.act(self.fc1(torch.cat(branches, 1))))  # channel-MLP interaction
