"""State dicts laid out as the official BoxeR-2D checkpoints (../shared/OFFICIAL_BOXER_CHECKPOINTS.md),
and the rename table of that file written out key by key, as the oracle of the converter tests."""

from __future__ import annotations

import torch

BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}


def official_shapes(depth: int = 50, num_classes: int = 91, masks: bool = False) -> dict[str, tuple]:
    """Every key of an official BoxeR-2D state dict with its shape (6+6 layers, d 256, 8 heads, 4 levels)."""
    s: dict[str, tuple] = {}

    def norm(p: str, c: int, bn: bool = False) -> None:
        s.update({f"{p}.weight": (c,), f"{p}.bias": (c,)})
        if bn:
            s.update({f"{p}.running_mean": (c,), f"{p}.running_var": (c,)})

    def linear(p: str, out: int, inp: int) -> None:
        s.update({f"{p}.weight": (out, inp), f"{p}.bias": (out,)})

    def mlp(p: str) -> None:
        linear(f"{p}.layers.0", 256, 256), linear(f"{p}.layers.1", 256, 256), linear(f"{p}.layers.2", 4, 256)

    s["backbone.conv1.weight"] = (64, 3, 7, 7)
    norm("backbone.bn1", 64, bn=True)
    cin = 64
    for n, (blocks, width) in enumerate(zip(BLOCKS[depth], [64, 128, 256, 512]), start=1):
        for b in range(blocks):
            p = f"backbone.layer{n}.{b}"
            for i, (o, c, k) in enumerate([(width, cin, 1), (width, width, 3), (4 * width, width, 1)], 1):
                s[f"{p}.conv{i}.weight"] = (o, c, k, k)
                norm(f"{p}.bn{i}", o, bn=True)
            if b == 0:
                s[f"{p}.downsample.0.weight"] = (4 * width, cin, 1, 1)
                norm(f"{p}.downsample.1", 4 * width, bn=True)
            cin = 4 * width
    for i, c in enumerate([512, 1024, 2048]):
        s.update({f"input_proj.{i}.0.weight": (256, c, 1, 1), f"input_proj.{i}.0.bias": (256,)})
        norm(f"input_proj.{i}.1", 256)
    s.update({"input_proj.3.0.weight": (256, 2048, 3, 3), "input_proj.3.0.bias": (256,)})
    norm("input_proj.3.1", 256)
    linear("enc_detector.class_embed", 1, 256)
    mlp("enc_detector.bbox_embed")
    linear("detector.class_embed", num_classes, 256)
    mlp("detector.bbox_embed")
    if masks:
        m = "detector.mask_embed.layers"
        s.update({f"{m}.0.0.weight": (256, 256, 2, 2), f"{m}.0.0.bias": (256,)})  # ConvTranspose (in, out)
        s.update({f"{m}.1.0.weight": (256, 256, 1, 1), f"{m}.1.0.bias": (256,)})
        s.update({f"{m}.2.weight": (num_classes, 256, 1, 1), f"{m}.2.bias": (num_classes,)})

    def box_attention(p: str, grid_rows: int) -> None:
        s.update({f"{p}.linear_box_weight": (128, 256), f"{p}.linear_box_bias": (128,)})
        s.update({f"{p}.linear_attn_weight": (128, 256), f"{p}.linear_attn_bias": (128,)})
        s[f"{p}.kernel_indices"] = (grid_rows, 2)
        linear(f"{p}.value_proj", 256, 256), linear(f"{p}.out_proj", 256, 256)

    for i in range(6):
        p = f"transformer.encoder.layers.{i}"
        box_attention(f"{p}.self_attn", 4)
        linear(f"{p}.linear1", 1024, 256), linear(f"{p}.linear2", 256, 1024)
        norm(f"{p}.norm1", 256), norm(f"{p}.norm2", 256)
    linear("transformer.encoder.enc_linear.0", 256, 256)
    norm("transformer.encoder.enc_linear.1", 256)
    for i in range(6):
        p = f"transformer.decoder.layers.{i}"
        s.update({f"{p}.self_attn.in_proj_weight": (768, 256), f"{p}.self_attn.in_proj_bias": (768,)})
        linear(f"{p}.self_attn.out_proj", 256, 256)
        box_attention(f"{p}.multihead_attn", 196 if masks else 4)
        linear(f"{p}.linear1", 1024, 256), linear(f"{p}.linear2", 256, 1024)
        norm(f"{p}.norm1", 256), norm(f"{p}.norm2", 256), norm(f"{p}.norm3", 256)
    return s


def official_state_dict(
    depth: int = 50, num_classes: int = 91, masks: bool = False, *, device: str = "cpu", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random tensors in the official layout (`device="meta"`: shapes only); kernel_indices are int64."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in official_shapes(depth, num_classes, masks).items():
        if key.endswith("kernel_indices"):
            out[key] = torch.zeros(shape, dtype=torch.long, device=device)
        elif device == "meta":
            out[key] = torch.empty(shape, device="meta")
        else:
            out[key] = torch.randn(shape, generator=gen)
    return out


# The table "Rename onto boxer" of OFFICIAL_BOXER_CHECKPOINTS.md, one row per entry, in plain string
# operations (deliberately not the converter's regular expressions).
def boxer_name(key: str) -> str:
    """The boxer key of official `key` (not for in_proj / kernel_indices, see `boxer_targets`)."""
    parts = key.split(".")
    if key.startswith("backbone."):  # torchvision's ResNet names on both sides
        return key
    if key.startswith("input_proj."):
        head = "neck.extra.0" if parts[1] == "3" else f"neck.lateral.{parts[1]}"
        return head + "." + ".".join(parts[2:])
    if key.startswith("enc_detector."):
        return "transformer.proposals." + key
    if key.startswith("transformer.encoder.enc_linear."):
        return key.replace("transformer.encoder.", "transformer.proposals.")
    if key.startswith("detector.mask_embed."):
        tail = {"0.0": "upsample", "1.0": "conv", "2": "predictor"}[".".join(parts[3:-1])]
        return f"mask_head.{tail}.{parts[-1]}"
    if key.startswith("detector."):
        return key.replace("detector.", "head.", 1)
    if key.startswith(("transformer.encoder.layers.", "transformer.decoder.layers.")):
        sub = parts[4]
        rest = ".".join(parts[5:])
        rest = rest.replace("linear_box_", "linear_box.").replace("linear_attn_", "linear_attention.")
        new = {"self_attn": "attn" if parts[1] == "encoder" else "self_attn", "multihead_attn": "cross_attn"}
        if sub in ("linear1", "linear2"):
            return ".".join(parts[:4]) + f".ffn.{sub}.{rest}"
        return ".".join(parts[:4]) + f".{new.get(sub, sub)}" + (f".{rest}" if rest else "")
    return key


def boxer_targets(key: str) -> list[tuple[str, slice]]:
    """Where official `key` lands: (boxer key, rows of the official tensor) pairs; [] when dropped."""
    if key.endswith("kernel_indices"):
        return []
    if key.endswith(("in_proj_weight", "in_proj_bias")):
        base, kind = key.rsplit(".", 1)
        what = kind.removeprefix("in_proj_")
        return [(f"{base}.qk_proj.{what}", slice(0, 512)), (f"{base}.v_proj.{what}", slice(512, 768))]
    return [(boxer_name(key), slice(None))]
