"""Global multi-head self-attention over all H*W tokens, and the non-local block.

- `GlobalAttention`: MHSA as in ViT (Dosovitskiy et al., 2021) and BoTNet (Srinivas et al., 2021).
  `pos` selects the position term: "none" (qk^T), "rel" (qk^T + qr^T, BoTNet's split 2D relative
  logits), "abs" (qk^T + q r_abs^T); `content=False` drops qk^T (BoTNet's "qr^T" ablation).
  BoTNet's MHSA has no output projection (`proj=False`) and no q/k/v bias; those are the defaults of
  the BoTNet factories in `boxer.models.backbones.hybrid`, not of this class.
- `NonLocal`: the embedded-Gaussian non-local block (Wang et al., CVPR 2018) with its zero-initialised
  BatchNorm and residual. Deviation: logits are scaled by 1/sqrt(d) (the attention core's
  convention); the paper does not scale.
"""

from __future__ import annotations

from torch import Tensor, nn

from boxer.layers.mixers.core import AttentionCore, map_to_tokens, pair, tokens_to_map
from boxer.layers.mixers.positions import AbsoluteLogits2d, RelativeLogits2d

_POSITIONS = ("none", "rel", "abs")


class GlobalAttention(nn.Module):
    """Global MHSA on a feature map.

    Args:
        dim: channels.
        num_heads: attention heads.
        pos: "none", "rel" (split 2D relative logits) or "abs" (absolute key positions).
        content: keep the content logits q k^T (False = BoTNet's "qr" ablation; needs pos).
        feat_size: nominal (H, W) for the position tables (other sizes crop/interpolate them).
        qkv_bias: bias in the q/k/v projection.
        proj: output projection.
        attn_drop: attention dropout.
        proj_drop: output dropout.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        pos: str = "none",
        content: bool = True,
        feat_size: int | tuple[int, int] | None = None,
        qkv_bias: bool = True,
        proj: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if pos not in _POSITIONS:
            raise ValueError(f"attention: pos must be one of {_POSITIONS}, got {pos!r}")
        if not content and pos == "none":
            raise ValueError("attention: content=False needs pos='rel' or 'abs'")
        self.core = AttentionCore(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, proj=proj, attn_drop=attn_drop, proj_drop=proj_drop
        )
        self.content = content
        size = pair(feat_size) or (14, 14)
        position = {"rel": RelativeLogits2d, "abs": AbsoluteLogits2d}.get(pos)
        self.pos_embed = position(self.core.head_dim, size) if position else None

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        _, _, height, width = x.shape
        q, k, v = self.core.project_qkv(map_to_tokens(x))  # each B, h, HW, d
        bias = self.pos_embed(q, height, width) if self.pos_embed is not None else None  # B, h, HW, HW
        out = self.core.attend(q, k, v, bias, content=self.content)  # B, h, HW, d
        return tokens_to_map(self.core.output(self.core.merge_heads(out)), height, width)

    def forward_tokens(self, tokens: Tensor) -> Tensor:
        """Token form for sequences that are not a grid (ViT with a class token). Only pos='none'.

        Tensor[B, N, C] -> Tensor[B, N, C].
        """
        if self.pos_embed is not None:
            raise ValueError("attention: token input (e.g. a class token) needs pos='none'")
        return self.core(tokens)


class NonLocal(nn.Module):
    """Non-local block: x + BN(W_z softmax(theta(x) phi(x)^T) g(x)), BN initialised to zero.

    Args:
        dim: channels.
        num_heads: heads (the paper uses 1).
        reduction: inner width = dim // reduction (the paper halves it).
        feat_size: unused (accepted by every mixer).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 1,
        reduction: int = 2,
        feat_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        inner = max(dim // reduction, num_heads)
        if inner % num_heads:
            raise ValueError(f"non-local: inner width {inner} is not divisible by num_heads {num_heads}")
        self.core = AttentionCore(dim, num_heads=num_heads, head_dim=inner // num_heads, qkv_bias=True)
        self.norm = nn.BatchNorm2d(dim)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] -> Tensor[B, C, H, W]."""
        _, _, height, width = x.shape
        y = tokens_to_map(self.core(map_to_tokens(x)), height, width)  # B, C, H, W
        return x + self.norm(y)
