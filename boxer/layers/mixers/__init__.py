"""Token mixers behind one interface (STYLE.md item 5; docs/zoo.md).

Every mixer is built as `Mixer(dim, *, num_heads=..., feat_size=None, **kw)` and maps
`Tensor[B, C, H, W] -> Tensor[B, C, H, W]`. `feat_size` is the nominal (H, W) the mixer will see;
mixers with position tables size them from it, the others ignore it. Blocks take a mixer by
registry name, so "BoTNet" is a ResNet whose c5 uses `mhsa_rel`.

| name | mechanism |
|---|---|
| `mhsa` | global MHSA, no positions (qk^T) |
| `mhsa_rel` | global MHSA + split 2D relative logits (BoTNet: qk^T + qr^T) |
| `mhsa_qr` | relative logits only (BoTNet ablation: qr^T) |
| `mhsa_abs` | global MHSA + absolute-position logits (BoTNet ablation: qk^T + qr_abs^T) |
| `window` | Swin W-MSA with relative position bias |
| `window_shifted` | Swin SW-MSA (shift = window // 2, masked) |
| `local` | sliding-window (neighbourhood) attention, 7x7 |
| `pvt` | PVT spatial-reduction attention (R = 2) |
| `nonlocal` | non-local block (embedded Gaussian, residual inside) |
| `box` | single-scale box-attention (BoxeR), windows on the token grid |
| `conv3x3` | dense 3x3 conv |
| `dwconv7` | depthwise 7x7 conv |
| `pool` | PoolFormer pooling |
| `ems` | EMSNet multi-scale interactions: C-MHSA at 1/2, G-MHSA at 1/4, transposed-conv propagation |
| `mat` | MAT: windows + per-window abstract tokens mixed globally (no roll) |
| `partial` | PartialFormer: MMSA on the top `fg_ratio` tokens, SQA squeezes the rest via Q_A |
| `deformable` | DAT-style deformable attention (offsets from queries, bilinear sampling) |
| `cswin` | CSWin cross-shaped windows (half heads in rows, half in columns) + LePE |
| `aa_conv` | attention-augmented convolution (conv channels + MHSA with 2-D relative logits) |
| `mobilevit` | MobileViT block (local conv, transformer over unfolded patches, fold, fuse) |
"""

from __future__ import annotations

from typing import Any

from torch import nn

from boxer.errors import BoxerError
from boxer.registry import Registry

MIXERS = Registry("mixer")
register_mixer = MIXERS.register


def create_mixer(name: str, dim: int, **kw: Any) -> nn.Module:
    """Builds the registered mixer `name` for `dim` channels; keywords go to its constructor."""
    if name not in MIXERS:
        raise BoxerError(f"mixer: unknown {name!r}; registered: {', '.join(list_mixers())}")
    return MIXERS.get(name)(dim, **kw)


def list_mixers(pattern: str = "*") -> list[str]:
    """Registered mixer names matching a shell-style pattern, sorted."""
    return MIXERS.names(pattern)


from boxer.layers.mixers import registry as _registry  # noqa: E402,F401  (registers the mixers)
