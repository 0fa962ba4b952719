"""`boxer viz mixer`: attention maps of the mixer zoo, and attention rollout of trained classifiers.

Two uses:

- `mixer_zoo`: each named mixer, freshly built (seed 0), mixes a feature map made from an image (the
  grey image resized to the grid, lifted to `dim` channels by a fixed random 1 x 1 projection plus a
  sinusoidal position term); a row per mixer shows each head's map for the query and their mean.
  Shifted windows also show the borders of the shifted regions (dashed).
- `classifier_maps`: a trained classifier checkpoint (`boxer train-cls` runs); every attention layer's
  map for the query (heads averaged) over the image, and, when every layer attends globally over one
  grid (ViT), the attention rollout for the query and averaged over all queries (what the global
  average pool sees).

The per-head maps come from `AttentionCapture` and `query_map`; each figure's numbers go to an NPZ.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from boxer.errors import BoxerError
from boxer.viz import MIXER_ZOO
from boxer.viz.figures import new_figure, save_figure
from boxer.viz.mixer_capture import AttentionCapture
from boxer.viz.mixer_maps import query_map, rollout, supported

ZOO = MIXER_ZOO


def grey_image(path: str | Path | None, size: int) -> Tensor:
    """Tensor[size, size] in [0, 1]: the image file in grey (or a synthetic pattern when None)."""
    import torch.nn.functional as F

    if path is None:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
        return ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1).float()
    from boxer.data.images import read_image

    img = read_image(path).float().mean(0, keepdim=True)[None] / 255  # 1, 1, h, w
    return F.interpolate(img, size=(size, size), mode="area")[0, 0]


def feature_map(grey: Tensor, dim: int) -> Tensor:
    """Tensor[1, dim, S, S]: the grey image lifted to `dim` channels (seeded projection + positions)."""
    gen = torch.Generator().manual_seed(0)
    s = grey.shape[-1]
    pos = torch.linspace(0, math.pi, s)
    waves = [torch.sin(pos * f)[:, None] * torch.cos(pos * f)[None, :] for f in (1, 2, 3)]
    stack = torch.stack([grey, *waves])  # 4, S, S
    proj = torch.randn(dim, 4, generator=gen)
    return torch.einsum("dc,chw->dhw", proj, stack)[None]


def _record_shapes(model: nn.Module, owners: dict[str, nn.Module]) -> tuple[dict, list]:
    shapes, handles = {}, []
    for name, owner in owners.items():

        def hook(module, args, name=name):
            if args and isinstance(args[0], Tensor) and args[0].dim() == 4:
                shapes[name] = tuple(args[0].shape[-2:])

        handles.append(owner.register_forward_pre_hook(hook))
    return shapes, handles


def capture_maps(model: nn.Module, x: Tensor, query: tuple[float, float]) -> list[dict]:
    """Runs `model(x)` and returns, per supported attention layer in call order, its map for the query.

    Args:
        model: any module holding attention mixers.
        x: its input.
        query: (y, x) of the query as fractions of the map ([0, 1)).

    Returns:
        dicts with `name`, `mixer` (class name), `maps` Tensor[h, H, W], `query` (y, x) in cells,
        `probs` (the call's probabilities) and `owner` (the mixer).
    """
    with AttentionCapture(model) as cap:
        shapes, handles = _record_shapes(model, cap.owners)
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
    out = []
    for name, calls in cap.calls.items():
        owner = cap.owners[name]
        if not calls or name not in shapes or not supported(owner):
            continue
        H, W = shapes[name]
        y, xq = min(int(query[0] * H), H - 1), min(int(query[1] * W), W - 1)
        maps = query_map(owner, calls[0].probs, H, W, y, xq)
        short = name.removesuffix(".core").removeprefix("backbone.").removesuffix(".mixer")
        out.append({"name": short, "mixer": type(owner).__name__, "maps": maps,
                    "query": (y, xq), "probs": calls[0].probs, "owner": owner})  # fmt: skip
    return out


def _show(ax, data, query: tuple[int, int], title: str, background=None, *, cmap: str = "inferno"):
    h, w = data.shape
    if background is not None:
        ax.imshow(background, cmap="gray", extent=(0, w, h, 0), interpolation="bilinear")
        ax.imshow(data, cmap="inferno", alpha=0.6, extent=(0, w, h, 0), interpolation="nearest")
    else:
        ax.imshow(data, cmap=cmap, extent=(0, w, h, 0), interpolation="nearest")
    ax.plot([query[1] + 0.5], [query[0] + 0.5], marker="+", color="cyan", markersize=9, mew=2)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _shift_borders(ax, owner: nn.Module, h: int, w: int) -> None:
    """Dashed lines where the cyclic shift cuts the map into regions (SW-MSA's masked pairs)."""
    (wh, ww), (sh, sw) = owner._window_and_shift(h, w)
    for cut in (sh, h - wh + sh) if sh else ():  # the rolled frame's bands, back in the map's frame
        ax.axhline(cut, color="white", linestyle="--", linewidth=1)
    for cut in (sw, w - ww + sw) if sw else ():
        ax.axvline(cut, color="white", linestyle="--", linewidth=1)


def mixer_zoo(names, out_dir: str | Path, *, image: str | None = None, size: int = 14,
              query: tuple[float, float] = (0.5, 0.5), dim: int = 32, heads: int = 4) -> dict:  # fmt: skip
    """Writes `mixers.png` and `mixers.npz` (per mixer: maps [h, S, S]); returns their paths."""
    from boxer.layers.mixers import create_mixer, list_mixers

    unknown = [n for n in names if n not in list_mixers()]
    if unknown:
        raise BoxerError(f"--mixers: unknown {', '.join(unknown)}; registered: {', '.join(list_mixers())}")
    grey = grey_image(image, size)
    x = feature_map(grey, dim)
    rows = []
    for name in names:
        torch.manual_seed(0)
        mixer = create_mixer(name, dim, num_heads=heads, feat_size=size).eval()
        found = capture_maps(mixer, x, query)
        if not found:
            raise BoxerError(f"--mixers: {name} has no attention map this tool can draw (no token layout)")
        rows.append((name, found[0]))
    fig = new_figure(150 * (heads + 2), 160 * len(rows) + 30)
    axes = fig.subplots(len(rows), heads + 2, squeeze=False)
    arrays = {}
    for r, (name, rec) in enumerate(rows):
        maps = rec["maps"].numpy()
        arrays[name] = maps
        _show(axes[r, 0], grey.numpy(), rec["query"], f"{name}: input", cmap="gray")
        for h in range(heads + 1):
            data = maps.mean(0) if h == heads else maps[h]
            _show(axes[r, h + 1], data, rec["query"], f"{name} {'mean' if h == heads else f'head {h}'}")
            if name.startswith("window") and rec["mixer"] == "WindowAttention":
                _shift_borders(axes[r, h + 1], rec["owner"], size, size)
    fig.suptitle(f"attention of the query (+) over a {size}x{size} map, random init (seed 0)", fontsize=10)
    fig.tight_layout()
    out = Path(out_dir)
    png = save_figure(fig, out / "mixers.png")
    np.savez_compressed(out / "mixers.npz", **arrays)
    return {"figures": [str(png)], "data": [str(out / "mixers.npz")]}


def classifier_maps(checkpoint: str, image: str, out_dir: str | Path, *, query=(0.5, 0.5)) -> dict:
    """Writes `<stem>_layers.png`, `<stem>_rollout.png` (global-attention models) and `<stem>_maps.npz`."""
    from boxer.classification.data import to_model_input
    from boxer.classification.runner import load_classifier

    model, _ = load_classifier(checkpoint)
    side = int(getattr(model, "img_size", 28))
    grey = grey_image(image, side)
    x = to_model_input((grey * 255).round().to(torch.uint8)[None], in_chans=model.in_chans, img_size=side)
    found = capture_maps(model, x, query)
    if not found:
        raise BoxerError(f"{checkpoint}: the model has no attention layer whose maps can be drawn")
    out, stem = Path(out_dir), Path(image).stem
    cols = min(6, len(found))
    fig = new_figure(170 * cols, 180 * math.ceil(len(found) / cols) + 30)
    axes = fig.subplots(math.ceil(len(found) / cols), cols, squeeze=False)
    for i, rec in enumerate(found):
        _show(axes[i // cols, i % cols], rec["maps"].mean(0).numpy(), rec["query"],
              f"{rec['name']}\n{rec['mixer']}", _resize(grey, rec["maps"].shape[-2:]))  # fmt: skip
    for j in range(len(found), axes.size):
        axes.flat[j].set_axis_off()
    fig.suptitle(f"{stem}: attention of the query (+), heads averaged, per layer", fontsize=10)
    fig.tight_layout()
    written = [save_figure(fig, out / f"{stem}_layers.png")]
    arrays = {f"layer{i}_{r['name']}": r["maps"].numpy() for i, r in enumerate(found)}
    grids = {tuple(r["maps"].shape[-2:]) for r in found}
    if len(grids) == 1 and all(r["mixer"] == "GlobalAttention" for r in found):
        written.append(_rollout_figure(found, grey, out / f"{stem}_rollout.png", arrays))
    np.savez_compressed(out / f"{stem}_maps.npz", **arrays)
    return {"figures": [str(p) for p in written], "data": [str(out / f"{stem}_maps.npz")]}


def _resize(grey: Tensor, shape) -> np.ndarray:
    import torch.nn.functional as F

    return F.interpolate(grey[None, None], size=tuple(shape), mode="area")[0, 0].numpy()


def _rollout_figure(found: list[dict], grey: Tensor, path: Path, arrays: dict) -> Path:
    H, W = found[0]["maps"].shape[-2:]
    roll = rollout([r["probs"][0] for r in found])  # N, N
    y, x = found[0]["query"]
    per_query = roll[y * W + x].reshape(H, W).numpy()
    overall = roll.mean(0).reshape(H, W).numpy()
    arrays.update(rollout=roll.numpy())
    fig = new_figure(520, 290)
    axes = fig.subplots(1, 2)
    bg = _resize(grey, (H, W))
    _show(axes[0], per_query, (y, x), "rollout: the query (+)", bg)
    _show(axes[1], overall, (y, x), "rollout: mean over queries", bg)
    fig.tight_layout()
    return save_figure(fig, path)
