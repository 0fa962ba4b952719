"""BoxeR-2D decoder (BoxeR, Nguyen et al., CVPR 2022; docs/boxer2d.md, "Files", "Masks"): post-norm layers
of query self-attention, box-attention (or instance-attention when masks are on) to the encoder memory, and
an FFN.

There is no iterative refinement in the paper's model: every layer attends through the same detached
proposal windows. The `box_refine` acceleration (Deformable DETR's iterative bounding-box
refinement) passes `refine`: each layer's predicted box, detached, becomes the next layer's window
and query position.

Deviation (same maths, less work): the mask-feature branch R of instance-attention is not computed
inside the main pass. R is never fed back into the query stream and is only read by the mask head
for the queries whose masks are used (the matched queries in training, the top-k at inference), so
`DecoderLayer.mask_features` recomputes it afterwards for just those queries, from the tensors the
main pass saved (`LayerState`). Gradients are identical to computing R for all queries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor, nn

from boxer.layers import BoxAttention, InstanceAttention
from boxer.layers.checkpointing import run_layer
from boxer.models.boxer2d.blocks import FeedForward, SelfAttention

RESIDUAL_MODES = ("v1", "v2")


class LayerState(NamedTuple):
    """What one decoder layer saves for recomputing its mask features; each Tensor[B, Q, d]."""

    t1: Tensor  # after self-attention and norm1 (cross-attention query is t1 + pos)
    t2: Tensor  # after cross-attention and norm2
    t3: Tensor  # layer output, after the FFN and norm3


class DecoderLayer(nn.Module):
    """One post-norm decoder layer.

    Args:
        dim: model width.
        num_heads: attention heads (self- and cross-attention).
        num_levels: feature levels.
        ffn_dim: FFN hidden width.
        grid_size: box-attention grid side m (detection).
        with_masks: use instance-attention (grid `mask_grid`) as cross-attention.
        mask_grid: instance-attention grid side m_I.
        residual_mode: "v1" (FFN per mask cell, shared weights) or "v2" (low memory: add the
            layer's output query instead).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        num_levels: int = 4,
        ffn_dim: int = 1024,
        grid_size: int = 2,
        with_masks: bool = False,
        mask_grid: int = 14,
        residual_mode: str = "v1",
    ) -> None:
        super().__init__()
        if residual_mode not in RESIDUAL_MODES:
            raise ValueError(f"residual_mode must be one of {RESIDUAL_MODES}, got {residual_mode!r}")
        self.with_masks = with_masks
        self.residual_mode = residual_mode
        self.self_attn = SelfAttention(dim, num_heads=num_heads)
        self.norm1 = nn.LayerNorm(dim)
        if with_masks:
            self.cross_attn = InstanceAttention(
                dim, num_heads=num_heads, num_levels=num_levels, grid_size=mask_grid
            )
        else:
            self.cross_attn = BoxAttention(
                dim, num_heads=num_heads, num_levels=num_levels, grid_size=grid_size
            )
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self,
        t: Tensor,
        pos: Tensor,
        memory: Tensor,
        spatial_shapes: Tensor,
        windows: Tensor,
        valid_ratios: Tensor,
        padding_mask: Tensor | None,
        attn_mask: Tensor | None = None,
    ) -> LayerState:
        """t, pos: Tensor[B, Q, d]; memory: Tensor[B, S, d]; windows: Tensor[B, Q, 4]; attn_mask: the
        self-attention mask Tensor[B, 1, Q, Q] (True = may attend) or None. Returns the states."""
        t1 = self.norm1(t + self.self_attn(t, pos, attn_mask))
        att = self._cross(t1 + pos, memory, spatial_shapes, windows, valid_ratios, padding_mask)
        t2 = self.norm2(t1 + att)
        t3 = self.norm3(t2 + self.ffn(t2))
        return LayerState(t1, t2, t3)

    def _cross(self, query, memory, spatial_shapes, windows, valid_ratios, padding_mask) -> Tensor:
        kw = {"valid_ratios": valid_ratios, "padding_mask": padding_mask}
        if self.with_masks:
            return self.cross_attn(query, memory, spatial_shapes, windows, return_mask_features=False, **kw)[
                0
            ]
        return self.cross_attn(query, memory, spatial_shapes, windows, **kw)

    def mask_features(
        self,
        state: LayerState,
        pos: Tensor,
        memory: Tensor,
        spatial_shapes: Tensor,
        windows: Tensor,
        valid_ratios: Tensor,
        padding_mask: Tensor | None,
    ) -> Tensor:
        """Mask features R of the queries in `state` (any subset, gathered by the caller).

        Args:
            state: LayerState of Tensor[B, K, d] for the K chosen queries.
            pos, windows: Tensor[B, K, d] and Tensor[B, K, 4] of the same queries.
            memory, spatial_shapes, valid_ratios, padding_mask: as in `forward`.

        Returns:
            Tensor[B, K, m_I, m_I, d].
        """
        kw = {"valid_ratios": valid_ratios, "padding_mask": padding_mask}
        _, r = self.cross_attn(
            state.t1 + pos, memory, spatial_shapes, windows, return_mask_features=True, **kw
        )
        r = self.norm2(state.t2[:, :, None, None] + r)  # B, K, m, m, d
        if self.residual_mode == "v1":
            return self.norm3(r + self.ffn(r))
        return self.norm3(state.t3[:, :, None, None] + r)


class BoxDecoder(nn.Module):
    """A stack of decoder layers sharing one configuration.

    Args:
        dim: model width.
        num_layers: layers.
        checkpoint: recompute each layer in backward instead of saving its activations (training);
            the returned states are the layer outputs, so `mask_features` reads them as usual.
        kwargs: `DecoderLayer` keywords.
    """

    def __init__(self, dim: int, *, num_layers: int = 6, checkpoint: bool = False, **kwargs) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.layers = nn.ModuleList(DecoderLayer(dim, **kwargs) for _ in range(num_layers))

    def forward(
        self,
        tgt: Tensor,
        pos: Tensor,
        memory: Tensor,
        spatial_shapes: Tensor,
        windows: Tensor,
        valid_ratios: Tensor,
        padding_mask: Tensor | None,
        attn_mask: Tensor | None = None,
        refine: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    ) -> tuple[list[LayerState], list[Tensor]]:
        """Runs every layer from content queries `tgt: Tensor[B, Q, d]`.

        `refine(t3, windows) -> (windows, pos)` (optional) gives the next layer's detached windows
        and query positions from a layer's output. Returns each layer's state and the windows
        Tensor[B, Q, 4] each layer attended through (all the same without `refine`).
        """
        states, used = [], []
        t = tgt
        for layer in self.layers:
            args = (t, pos, memory, spatial_shapes, windows, valid_ratios, padding_mask, attn_mask)
            states.append(LayerState(*run_layer(layer, *args, checkpointed=self.checkpoint)))
            used.append(windows)
            t = states[-1].t3
            if refine is not None:
                windows, pos = refine(t, windows)
        return states, used
