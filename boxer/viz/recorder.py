"""Records where box-attention looks: forward hooks on every `WindowAttentionBase` of a model.

Nothing in the model changes. The hook receives the call's inputs and recomputes, with the module's
own Linear layers, what the forward computed inside (`boxer/layers/box_attention.py`,
`boxer/layers/instance_attention.py`): the transformed windows (`WindowAttentionBase.windows`,
without the valid ratios, i.e. normalised to the valid image like the predictions), the m x m
sampling points (`boxer.ops.sampling_locations`, the op's own geometry) and the attention weights
(softmax per head over levels x cells; for instance-attention the coarse 2 x 2 logits expanded to
the g x g grid as `boxer.ops.functional.instance_attention` does). Recomputing the same Linear on
the same input gives the same numbers, so the forward is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from boxer.layers.box_attention import WindowAttentionBase
from boxer.layers.instance_attention import InstanceAttention
from boxer.ops import sampling_locations
from boxer.ops.functional import expand_coarse


@dataclass
class AttentionRecord:
    """One call of a box-attention module; tensors on CPU, float32.

    Attributes:
        ref_windows: Tensor[B, Q, 4] (cx, cy, w, h) normalised to the valid image (per-head
            reference windows are averaged over heads).
        boxes: Tensor[B, Q, H, L, 4] transformed windows (cx, cy, w, h), same normalisation.
        points: Tensor[B, Q, H, L, m, m, 2] sampling points (x, y), same normalisation.
        weights: Tensor[B, Q, H, L, m, m], attention weight of each point (sum 1 per query and head).
        spatial_shapes: (H_l, W_l) of each level.
        valid_ratios: Tensor[B, L, 2] or None.
    """

    ref_windows: Tensor
    boxes: Tensor
    points: Tensor
    weights: Tensor
    spatial_shapes: list[tuple[int, int]]
    valid_ratios: Tensor | None


def attention_weights(module: WindowAttentionBase, query: Tensor) -> Tensor:
    """Tensor[B, Q, H, L, m, m] weights of each sampling point, as the module's forward makes them."""
    B, Q, _ = query.shape
    H, L, m = module.num_heads, module.num_levels, module.grid_size
    logits = module.linear_attention(query).float()
    if isinstance(module, InstanceAttention):
        coarse = logits.view(B, Q, H, L * 4).softmax(-1).view(B, Q, H, L, 2, 2) / (m // 2) ** 2
        return expand_coarse(coarse, m)
    return logits.view(B, Q, H, L * m * m).softmax(-1).view(B, Q, H, L, m, m)


@torch.no_grad()
def record_call(module: WindowAttentionBase, args: tuple, kwargs: dict) -> AttentionRecord:
    """The record of one call `module(query, value, spatial_shapes, ref_windows, **kwargs)`."""
    query, _, spatial_shapes, ref_windows = args[:4]
    boxes, angles = module.windows(query, ref_windows, None)  # B, Q, H, L, 4, valid-normalised
    points = sampling_locations(boxes.float(), module.grid_size, None if angles is None else angles.float())
    ref = ref_windows if ref_windows.dim() == 3 else ref_windows.mean(2)  # B, Q, C
    ratios = kwargs.get("valid_ratios")
    return AttentionRecord(
        ref_windows=ref[..., :4].float().cpu(),
        boxes=boxes.float().cpu(),
        points=points.cpu(),
        weights=attention_weights(module, query).cpu(),
        spatial_shapes=[(int(h), int(w)) for h, w in spatial_shapes.tolist()],
        valid_ratios=None if ratios is None else ratios.float().cpu(),
    )


class AttentionRecorder:
    """Context manager that records every call of the model's box- and instance-attention modules.

    `records[name]` lists the calls of the module `name` (`model.named_modules()`), in order.

    Args:
        model: any module; its `WindowAttentionBase` submodules are hooked.
        include: keep only module names for which this returns True (default: all).
    """

    def __init__(self, model: nn.Module, *, include=None) -> None:
        self.modules = {
            name: mod
            for name, mod in model.named_modules()
            if isinstance(mod, WindowAttentionBase) and (include is None or include(name))
        }
        self.records: dict[str, list[AttentionRecord]] = {name: [] for name in self.modules}
        self._handles: list = []

    def __enter__(self) -> AttentionRecorder:
        for name, mod in self.modules.items():
            self._handles.append(mod.register_forward_hook(self._hook(name), with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module, args, kwargs, output):
            self.records[name].append(record_call(module, args, kwargs))

        return hook
