"""Small building blocks of the BoxeR-2D transformer and heads.

BoxeR (Nguyen et al., CVPR 2022; docs/boxer2d.md, "Files"): the ReLU FFN of every layer (dropout 0),
the decoder's query self-attention and the MLPs of the prediction heads.

Deviation: self-attention is our own projection + `scaled_dot_product_attention` rather than
`nn.MultiheadAttention` (same maths: q = k from `t + pos`, v from `t`, 8 heads, out-projection);
queries and keys share one fused Linear because they read the same input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boxer.layers.sdpa import scaled_dot_product_attention


class FeedForward(nn.Module):
    """Position-wise FFN `dim -> hidden -> dim` with ReLU (256 -> 1024 -> 256 in the R50 / R101 variants,
    docs/boxer2d.md "Variants").

    Args:
        dim: input and output width.
        hidden: width of the hidden layer.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        nn.init.xavier_uniform_(self.linear1.weight)
        nn.init.xavier_uniform_(self.linear2.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(F.relu(self.linear1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention through `F.scaled_dot_product_attention`.

    Args:
        dim: model width.
        num_heads: attention heads; `dim` must divide evenly.
    """

    def __init__(self, dim: int, *, num_heads: int = 8) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qk_proj = nn.Linear(dim, 2 * dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        for lin in (self.qk_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, pos: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Attends `x` to itself, with `pos` added to queries and keys only.

        Args:
            x: Tensor[B, Q, d] content.
            pos: Tensor[B, Q, d] positional embedding.
            attn_mask: Tensor[B, 1, Q, Q] bool (True = query row may attend to key column), or None.

        Returns:
            Tensor[B, Q, d].
        """
        B, Q, d = x.shape
        H = self.num_heads
        qk = self.qk_proj(x + pos).view(B, Q, 2, H, d // H).permute(2, 0, 3, 1, 4)  # 2, B, H, Q, D
        v = self.v_proj(x).view(B, Q, H, d // H).transpose(1, 2)  # B, H, Q, D
        out = scaled_dot_product_attention(qk[0], qk[1], v, attn_mask=attn_mask)  # B, H, Q, D
        return self.out_proj(out.transpose(1, 2).reshape(B, Q, d))


class MLP(nn.Module):
    """`num_layers` Linears with ReLU between them (DETR's box MLP).

    Args:
        in_dim: input width.
        hidden: hidden width.
        out_dim: output width.
        num_layers: number of Linears.
        zero_last: zero-initialise the last Linear (the box heads, as Deformable DETR does).
    """

    def __init__(
        self, in_dim: int, hidden: int, out_dim: int, *, num_layers: int = 3, zero_last: bool = False
    ):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        if zero_last:
            nn.init.zeros_(self.layers[-1].weight)
            nn.init.zeros_(self.layers[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """The clamped logit function of Deformable DETR / BoxeR: log(x / (1 - x)); not `torch.logit`
    at the clamp (tests/layers/test_same_as_dependency.py)."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))
