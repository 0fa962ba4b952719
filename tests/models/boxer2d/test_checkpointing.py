"""Activation checkpointing (`checkpoint_layers`, `checkpoint_backbone`; boxer/layers/checkpointing.py):
the same losses and gradients, bit for bit, as without it; reached from `create_model` and `--set`;
off at inference."""

from __future__ import annotations

import pytest
import torch

import boxer
from boxer.engine.config import TrainConfig, apply_overrides

CKPT = {"checkpoint_layers": True, "checkpoint_backbone": True}
SMALL = {
    "backbone": "resnet18",
    "num_classes": 3,
    "num_queries": 6,
    "enc_layers": 2,
    "dec_layers": 2,
    "dim": 32,
    "ffn_dim": 32,
    "num_heads": 4,
    "mask_grid": 4,
}


def _batch() -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Two 64x96 images (the second padded to 64x72) with box-shaped masks."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 64, 96, generator=gen)  # B, 3, H, W
    pad = torch.zeros(2, 64, 96, dtype=torch.bool)
    pad[1, :, 72:] = True
    images[1, :, :, 72:] = 0
    targets = []
    for w, boxes, labels in [(96, [[8, 4, 50, 40]], [2]), (72, [[0, 10, 30, 60], [40, 5, 70, 30]], [0, 1])]:
        masks = torch.zeros(len(boxes), 64, w, dtype=torch.uint8)
        for j, (x1, y1, x2, y2) in enumerate(boxes):
            masks[j, y1:y2, x1:x2] = 1
        size = torch.tensor([64, w])
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
                        "size": size, "orig_size": size, "masks": masks})  # fmt: skip
    return images, pad, targets


def _losses_and_grads(name: str, **kw) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = boxer.create_model(name, **SMALL, **kw).train()
    images, pad, targets = _batch()
    losses = model(images, pad, targets)
    losses["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


CASES = [  # boxer2d_r50_mask: its residual v1 (the lite mask model has v2), on SMALL's ResNet-18
    ("boxer2d_r18_lite", {}),
    ("boxer2d_r18_lite_mask", {}),
    ("boxer2d_r50_mask", {}),
    ("boxer2d_r18_lite_mask", {"box_refine": True, "dn_groups": 2}),
]


@pytest.mark.parametrize("name, kw", CASES)
def test_checkpointing_is_exact(name, kw):
    """Every loss term and every parameter gradient equal (torch.equal): the recomputation runs the
    same deterministic CPU ops on the same inputs."""
    losses, grads = _losses_and_grads(name, **kw)
    ck_losses, ck_grads = _losses_and_grads(name, **CKPT, **kw)
    assert losses.keys() == ck_losses.keys()
    assert all(torch.equal(losses[k], ck_losses[k]) for k in losses), "a loss differs"
    assert grads.keys() == ck_grads.keys()
    differ = [n for n in grads if not torch.equal(grads[n], ck_grads[n])]
    assert not differ, differ


def test_keywords_reach_the_layers():
    model = boxer.create_model("boxer2d_r50_mask", num_classes=80, checkpoint_layers=True)
    assert model.transformer.encoder.checkpoint and model.transformer.decoder.checkpoint
    assert not model.backbone.checkpoint_stages
    cfg = TrainConfig()
    apply_overrides(cfg, {f"model.{k}": "true" for k in CKPT}, source="--set")
    assert cfg.model_kwargs == CKPT
    both = boxer.create_model("boxer2d_r18_lite", **SMALL, **cfg.model_kwargs)
    assert both.transformer.encoder.checkpoint and both.backbone.checkpoint_stages
    plain = boxer.create_model("boxer2d_r18_lite", **SMALL)
    assert not plain.transformer.encoder.checkpoint and not plain.transformer.decoder.checkpoint
    assert not plain.backbone.checkpoint_stages


def test_checkpoint_runs_only_in_training_with_grad(monkeypatch):
    """Inference (eval or no_grad) calls the layers directly; training calls torch.utils.checkpoint."""
    import boxer.layers.checkpointing as checkpointing

    calls = []
    monkeypatch.setattr(checkpointing, "checkpoint", lambda f, *a, **k: calls.append(1) or f(*a))
    model = boxer.create_model("boxer2d_r18_lite", **SMALL, **CKPT)
    images, pad, targets = _batch()
    with torch.no_grad():
        model.train()(images, pad, targets)
        model.eval().predict(images, pad, targets)
    assert not calls
    model.train()(images, pad, targets)
    assert len(calls) == SMALL["enc_layers"] + SMALL["dec_layers"] + 4  # + the ResNet's 4 stages
