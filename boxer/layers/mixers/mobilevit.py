"""The MobileViT block (Mehta and Rastegari, "MobileViT", ICLR 2022), compared against in the
efficient-ViT deck's lightweight table (docs/zoo.md, "The efficient-ViT deck beside ours").

Local representation (k x k conv, then 1x1 conv to the transformer width), global representation
(unfold the map into p x p patches; the pixels at the same offset inside their patches form one
sequence, P = p*p sequences of N = HW/P tokens; a few pre-norm transformer layers run on each
sequence), fold back, 1x1 conv to the input width, concatenate with the input and fuse by a k x k
conv.

Deviations: SiLU after the convolutions but no BatchNorm (a mixer must not couple batch items; the
block around it normalises); a side that is not a multiple of the patch is zero-padded and padded
tokens are masked as keys (a sequence made only of padding, cropped afterwards, is left
unmasked; MobileViT resizes the map instead); transformer width = `dim` unless
`transformer_dim` is given, depth 2, MLP ratio 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore


def unfold_patches(x: Tensor, patch: int) -> Tensor:
    """Tensor[B, C, H, W] (H, W multiples of p) -> Tensor[B*p*p, H*W/(p*p), C]; sequence (i, j) holds
    the pixels x[..., i::p, j::p], row-major."""
    B, C, H, W = x.shape
    x = x.view(B, C, H // patch, patch, W // patch, patch)
    return x.permute(0, 3, 5, 2, 4, 1).reshape(B * patch * patch, -1, C)


def fold_patches(seq: Tensor, patch: int, height: int, width: int) -> Tensor:
    """The inverse of `unfold_patches`: Tensor[B*p*p, N, C] -> Tensor[B, C, H, W]."""
    C = seq.shape[-1]
    x = seq.view(-1, patch, patch, height // patch, width // patch, C)
    return x.permute(0, 5, 3, 1, 4, 2).reshape(-1, C, height, width)


class TransformerLayer(nn.Module):
    """Pre-norm self-attention + MLP on tokens Tensor[B, N, C] (MobileViT's inner transformer)."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = AttentionCore(dim, num_heads=num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.SiLU)

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """Tensor[B, N, C] -> Tensor[B, N, C]; `bias` masks keys (broadcastable to B, h, N, N)."""
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class MobileViTBlock(nn.Module):
    """Local conv -> transformer over unfolded patches -> fold -> fuse with the input.

    Args:
        dim: channels in and out.
        num_heads: heads of the inner transformer.
        transformer_dim: width of the inner transformer (default dim).
        depth: inner transformer layers.
        patch_size: patch side p.
        mlp_ratio: inner MLP width / transformer width.
        kernel_size: the local and fusion conv side (odd).
        feat_size: unused (accepted by every mixer).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 4,
        transformer_dim: int | None = None,
        depth: int = 2,
        patch_size: int = 2,
        mlp_ratio: float = 2.0,
        kernel_size: int = 3,
        feat_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        inner = transformer_dim or dim
        pad = kernel_size // 2
        self.patch_size = patch_size
        self.local = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, padding=pad), nn.SiLU(), nn.Conv2d(dim, inner, 1, bias=False)
        )
        self.layers = nn.ModuleList(
            TransformerLayer(inner, num_heads=num_heads, mlp_ratio=mlp_ratio) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(inner)
        self.project = nn.Sequential(nn.Conv2d(inner, dim, 1), nn.SiLU())
        self.fuse = nn.Sequential(nn.Conv2d(2 * dim, dim, kernel_size, padding=pad), nn.SiLU())

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        H, W = x.shape[-2:]
        p = self.patch_size
        pad_h, pad_w = (-H) % p, (-W) % p
        y = F.pad(self.local(x), (0, pad_w, 0, pad_h))  # B, D, Hp, Wp
        seq = unfold_patches(y, p)  # B*p*p, N, D
        bias = None
        if pad_h or pad_w:
            real = unfold_patches(F.pad(x.new_ones(1, 1, H, W), (0, pad_w, 0, pad_h)), p)  # p*p, N, 1
            padded = (real == 0) & (real != 0).any(1, keepdim=True)  # a sequence of only padding: unmasked
            bias = torch.zeros_like(real).masked_fill(padded, float("-inf")).transpose(1, 2)  # p*p, 1, N
            bias = bias[:, None].repeat(x.shape[0], 1, 1, 1)  # B*p*p, 1, 1, N
        for layer in self.layers:
            seq = layer(seq, bias)
        y = fold_patches(self.norm(seq), p, H + pad_h, W + pad_w)[..., :H, :W]  # B, D, H, W
        return self.fuse(torch.cat((x, self.project(y)), 1))
