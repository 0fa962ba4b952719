"""Official BoxeR-2D weights (github.com/kienduynguyen/BoxeR, package `e2edet`) onto boxer's BoxeR-2D.

The two state dicts hold the same numbers under other names (docs/official_weights.md has the
table), with two exceptions: the decoder self-attention's packed `in_proj` ([q; k; v] rows of
`nn.MultiheadAttention`) becomes boxer's `qk_proj` (rows q; k) and `v_proj` (rows v), and the
`kernel_indices` buffers (grid offsets, which boxer computes) are dropped. The official code predicts
raw COCO category ids, so its class heads have 91 rows; `select_class_rows` keeps the rows of chosen
ids (the 80 COCO categories) in the class head and the mask predictor.

Pure functions on state dicts; reading files and writing checkpoints is `convert.py` next to it.
Every refusal is a `BoxerError` whose message starts with the offending key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from boxer.errors import BoxerError

# Applied in order, each at most once per key; keys no rule touches keep their names.
RENAMES: list[tuple[re.Pattern, str | Callable[[re.Match], str]]] = [
    (re.compile(p), r)
    for p, r in [
        (r"^input_proj\.([0-2])\.", r"neck.lateral.\1."),
        (r"^input_proj\.3\.", "neck.extra.0."),
        (r"^enc_detector\.", "transformer.proposals.enc_detector."),
        (r"^transformer\.encoder\.enc_linear\.", "transformer.proposals.enc_linear."),
        (r"^(transformer\.encoder\.layers\.\d+)\.self_attn\.", r"\1.attn."),
        (r"^(transformer\.decoder\.layers\.\d+)\.multihead_attn\.", r"\1.cross_attn."),
        (r"\.linear_box_(weight|bias)$", r".linear_box.\1"),
        (r"\.linear_attn_(weight|bias)$", r".linear_attention.\1"),
        (r"^(transformer\.(?:en|de)coder\.layers\.\d+)\.(linear[12])\.", r"\1.ffn.\2."),
        (r"^detector\.(class_embed|bbox_embed)\.", r"head.\1."),
        (r"^detector\.mask_embed\.layers\.0\.0\.", "mask_head.upsample."),
        (r"^detector\.mask_embed\.layers\.1\.0\.", "mask_head.conv."),
        (r"^detector\.mask_embed\.layers\.2\.", "mask_head.predictor."),
    ]
]
IN_PROJ = re.compile(r"^(transformer\.decoder\.layers\.\d+\.self_attn)\.in_proj_(weight|bias)$")
DROPPED = re.compile(r"\.kernel_indices$")
CLASS_KEY = "detector.class_embed.weight"
MASK_PREFIX = "detector.mask_embed."
DEPTHS = {6: 50, 23: 101}  # blocks of ResNet stage 3 (layer3) -> depth
MASK_GRID_ROWS = 196  # kernel_indices rows of instance-attention (14 x 14); box-attention has 4


@dataclass(frozen=True)
class OfficialLayout:
    """What an official BoxeR-2D state dict is, read from its keys and shapes."""

    depth: int
    num_classes: int
    with_masks: bool

    @property
    def model_name(self) -> str:
        """The boxer variant with the same architecture."""
        return f"boxer2d_r{self.depth}" + ("_mask" if self.with_masks else "")


def strip_module_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drops the `module.` prefix that a DistributedDataParallel-wrapped model adds to every key."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def read_layout(state: dict[str, Tensor]) -> OfficialLayout:
    """Backbone depth, class count and masks of an official state dict (keys without `module.`)."""
    if CLASS_KEY not in state:
        raise BoxerError(f"{CLASS_KEY}: missing; not an official BoxeR-2D state dict")
    blocks = {int(m[1]) for k in state if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))}
    if len(blocks) not in DEPTHS:
        raise BoxerError(f"backbone.layer3: {len(blocks)} blocks; expected 6 (ResNet-50) or 23 (ResNet-101)")
    return OfficialLayout(DEPTHS[len(blocks)], int(state[CLASS_KEY].shape[0]), _has_masks(state))


def _has_masks(state: dict[str, Tensor]) -> bool:
    """Mask head weights or an instance-attention decoder (196-row kernel_indices); both or neither."""
    head = any(k.startswith(MASK_PREFIX) for k in state)
    grids = {
        k: v.shape[0]
        for k, v in state.items()
        if k.startswith("transformer.decoder.") and DROPPED.search(k) and v.ndim
    }
    for key, rows in grids.items():
        if (rows == MASK_GRID_ROWS) != head:
            kind = "instance-attention (masks)" if rows == MASK_GRID_ROWS else "box-attention"
            other = "has" if head else "has no"
            raise BoxerError(f"{key}: {rows} rows ({kind}) but the file {other} {MASK_PREFIX}* weights")
    return head


def to_boxer(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Renames an official state dict onto boxer's names.

    Args:
        state: official keys (no `module.` prefix) -> tensors.

    Returns:
        boxer keys -> float tensors (contiguous, owning their memory), and boxer key -> the official
        key it came from (`in_proj` rows are written `key[a:b]`), for messages.
    """
    out, source = {}, {}
    for key, value in state.items():
        if DROPPED.search(key):
            continue
        if m := IN_PROJ.match(key):
            d = value.shape[0] // 3
            for name, rows in (("qk_proj", slice(0, 2 * d)), ("v_proj", slice(2 * d, 3 * d))):
                new = f"{m[1]}.{name}.{m[2]}"
                out[new], source[new] = _own(value[rows]), f"{key}[{rows.start}:{rows.stop}]"
            continue
        new = key
        for pattern, repl in RENAMES:
            new = pattern.sub(repl, new, count=1)
        out[new], source[new] = _own(value), key
    return out, source


def _own(t: Tensor) -> Tensor:
    t = t.detach()
    return (t.float() if t.is_floating_point() else t).contiguous().clone()


def check_fits(
    weights: dict[str, Tensor], source: dict[str, str], expected: dict[str, torch.Size], model: str
) -> None:
    """Raises a BoxerError naming the first tensor that does not fit `model`'s state dict exactly.

    Args:
        weights: renamed tensors (`to_boxer`).
        source: boxer key -> official key, from `to_boxer`.
        expected: the boxer model's state dict shapes.
        model: the boxer model's name, for the message.
    """
    for key, value in weights.items():
        if key not in expected:
            raise BoxerError(f"{source[key]}: {model} has no tensor for it (renamed {key})")
        if value.shape != expected[key]:
            raise BoxerError(
                f"{source[key]}: shape {list(value.shape)} does not fit {model}'s {key} {list(expected[key])}"
            )
    missing = [k for k in expected if k not in weights]
    if missing:
        raise BoxerError(
            f"{missing[0]}: {model} needs it and no official tensor maps onto it "
            f"({len(missing)} missing); not a complete official BoxeR-2D checkpoint"
        )


def select_class_rows(weights: dict[str, Tensor], rows: list[int]) -> dict[str, Tensor]:
    """The class head and mask predictor restricted to `rows` (e.g. the 80 COCO category ids)."""
    out = dict(weights)
    for key in ("head.class_embed.weight", "head.class_embed.bias"):
        out[key] = weights[key][rows].clone()
    for key in ("mask_head.predictor.weight", "mask_head.predictor.bias"):
        if key in weights:
            out[key] = weights[key][rows].clone()
    return out
