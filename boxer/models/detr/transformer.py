"""The DETR transformer (Carion et al., "End-to-End Object Detection with Transformers", ECCV 2020).

An encoder of post-norm self-attention layers over the flattened C5 tokens and a decoder of post-norm
self-attention + cross-attention layers over learned object queries, both built on
`nn.MultiheadAttention`. Positions enter as in the paper: the 2D sine embedding is added to the
queries and keys of every attention (never to the values), the learned query embedding to every
decoder query; the decoder starts from zeros. Every decoder layer's output passes through one shared
final LayerNorm, so that each can be supervised (auxiliary decoding losses). Weights with more than
one dimension are Xavier-uniform initialised, as in the official code.

`sine_position_2d` is the paper's padding-aware position embedding: cumulative counts of valid
(unpadded) cells, normalised to (0, 1] by the image's own extent and scaled by 2 pi, through the sine
features of `boxer.models.boxer2d.position.sine_embedding` (y block, then x block).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from boxer.models.boxer2d.position import sine_embedding


def sine_position_2d(
    pad_mask: Tensor, dim: int, *, temperature: float = 10000.0, eps: float = 1e-6
) -> Tensor:
    """DETR's normalised 2D sine position embedding.

    Cell (y, x) of an image with h x w valid cells is embedded from (y + 1) / h and (x + 1) / w, so an
    image gets the same embedding whether or not it was padded.

    Args:
        pad_mask: Tensor[B, H, W] bool, True = padding.
        dim: output width (divisible by 4); the first half embeds y, the second x.
        temperature: frequency base.
        eps: keeps all-padding rows and columns finite.

    Returns:
        Tensor[B, H, W, dim] float32.
    """
    valid = (~pad_mask).float()
    y = valid.cumsum(1)  # B, H, W
    x = valid.cumsum(2)
    y = y / (y[:, -1:, :] + eps)
    x = x / (x[:, :, -1:] + eps)
    return sine_embedding(torch.stack((y, x), dim=-1), dim, temperature=temperature)


def _ffn(dim: int, ffn_dim: int, dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> dropout -> Linear (the residual dropout is applied by the layer)."""
    return nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))


class EncoderLayer(nn.Module):
    """Post-norm encoder layer: x = LN(x + SA(x + pos, x + pos, x)); x = LN(x + FFN(x)).

    Args:
        dim: token width.
        num_heads: attention heads.
        ffn_dim: FFN hidden width.
        dropout: on attention weights, inside the FFN and on both residual branches.
    """

    def __init__(self, dim: int, *, num_heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.ffn = _ffn(dim, ffn_dim, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor, pad_mask: Tensor | None = None) -> Tensor:
        """src, pos: Tensor[B, S, d]; pad_mask: Tensor[B, S] bool (True = padding) -> Tensor[B, S, d]."""
        q = src + pos
        attn = self.self_attn(q, q, src, key_padding_mask=pad_mask, need_weights=False)[0]
        src = self.norm1(src + self.drop1(attn))
        return self.norm2(src + self.drop2(self.ffn(src)))


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: query self-attention, cross-attention to the memory, FFN.

    Args:
        dim: token width.
        num_heads: attention heads.
        ffn_dim: FFN hidden width.
        dropout: on attention weights, inside the FFN and on the three residual branches.
    """

    def __init__(self, dim: int, *, num_heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.ffn = _ffn(dim, ffn_dim, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self, tgt: Tensor, memory: Tensor, query_pos: Tensor, pos: Tensor, pad_mask: Tensor | None = None
    ) -> Tensor:
        """One decoder step.

        Args:
            tgt: Tensor[B, Q, d] decoder states.
            memory: Tensor[B, S, d] encoder output.
            query_pos: Tensor[B, Q, d] learned query embedding.
            pos: Tensor[B, S, d] sine embedding of the memory tokens.
            pad_mask: Tensor[B, S] bool, True = padding, or None.

        Returns:
            Tensor[B, Q, d].
        """
        q = tgt + query_pos
        attn = self.self_attn(q, q, tgt, need_weights=False)[0]
        tgt = self.norm1(tgt + self.drop1(attn))
        attn = self.cross_attn(
            tgt + query_pos, memory + pos, memory, key_padding_mask=pad_mask, need_weights=False
        )[0]
        tgt = self.norm2(tgt + self.drop2(attn))
        return self.norm3(tgt + self.drop3(self.ffn(tgt)))


class DETRTransformer(nn.Module):
    """Encoder-decoder of DETR over one feature map.

    Args:
        dim: transformer width d.
        num_heads: attention heads.
        enc_layers: encoder layers (0 = the projected features are the memory).
        dec_layers: decoder layers.
        ffn_dim: FFN hidden width.
        dropout: dropout of every layer.
    """

    def __init__(
        self,
        dim: int = 256,
        *,
        num_heads: int = 8,
        enc_layers: int = 6,
        dec_layers: int = 6,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if dim % num_heads or dim % 4:
            raise ValueError(f"detr: dim {dim} must be divisible by num_heads {num_heads} and by 4")
        if dec_layers < 1:
            raise ValueError(f"detr: dec_layers must be >= 1, got {dec_layers}")
        kw = {"num_heads": num_heads, "ffn_dim": ffn_dim, "dropout": dropout}
        self.dim = dim
        self.encoder = nn.ModuleList([EncoderLayer(dim, **kw) for _ in range(enc_layers)])
        self.decoder = nn.ModuleList([DecoderLayer(dim, **kw) for _ in range(dec_layers)])
        self.decoder_norm = nn.LayerNorm(dim)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: Tensor, pad_mask: Tensor | None, query_embed: Tensor) -> Tensor:
        """Decoder states of every layer.

        Args:
            src: Tensor[B, d, H, W] projected features.
            pad_mask: Tensor[B, H, W] bool at the feature resolution (True = padding), or None.
            query_embed: Tensor[Q, d] learned object queries.

        Returns:
            Tensor[L, B, Q, d]: every decoder layer's output after the shared final LayerNorm.
        """
        B, d, H, W = src.shape
        full = pad_mask if pad_mask is not None else src.new_zeros(B, H, W, dtype=torch.bool)
        pos = sine_position_2d(full, d).flatten(1, 2).to(src.dtype)  # B, H*W, d
        memory = src.flatten(2).transpose(1, 2)  # B, H*W, d
        mask = pad_mask.flatten(1) if pad_mask is not None else None  # B, H*W
        for layer in self.encoder:
            memory = layer(memory, pos, mask)
        query_pos = query_embed[None].expand(B, -1, -1)  # B, Q, d
        tgt = torch.zeros_like(query_pos)
        states = []
        for layer in self.decoder:
            tgt = layer(tgt, memory, query_pos, pos, mask)
            states.append(self.decoder_norm(tgt))
        return torch.stack(states)  # L, B, Q, d
