"""Every registered BoxeR-2D variant at tiny sizes: losses, gradients, predict format, state dicts."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import boxer
from boxer.errors import BoxerError
from boxer.models.backbones import create_backbone
from boxer.models.boxer2d import BoxeR2D, BoxTransformer

TINY = {
    "num_classes": 3,
    "num_queries": 6,
    "enc_layers": 1,
    "dec_layers": 2,
    "dim": 32,
    "ffn_dim": 32,
    "num_heads": 4,
    "mask_grid": 4,
}
H, W = 64, 96


def _batch(with_masks: bool = True):
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, H, W, generator=gen)
    pad = torch.zeros(2, H, W, dtype=torch.bool)
    pad[1, :, 72:] = True  # image 1 is 64 x 72
    images[1, :, :, 72:] = 0
    targets = []
    for i, (w, boxes, labels) in enumerate(
        [(W, [[8.0, 4, 50, 40]], [2]), (72, [[0.0, 10, 30, 60], [40, 5, 70, 30]], [0, 1])]
    ):
        boxes = torch.tensor(boxes)
        masks = torch.zeros(len(boxes), H, w, dtype=torch.uint8)
        for j, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[j, y1:y2, x1:x2] = 1
        t = {
            "boxes": boxes,
            "labels": torch.tensor(labels),
            "image_id": 10 + i,
            "size": torch.tensor([H, w]),
            "orig_size": torch.tensor([2 * H, 2 * w]),
        }
        if with_masks:
            t["masks"] = masks
        targets.append(t)
    return images, pad, targets


@pytest.fixture(scope="module", params=boxer.list_models("boxer2d*"))
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(name):
    """Built once per variant (the large backbones take seconds to initialise); tests set its mode."""
    torch.manual_seed(0)
    return boxer.create_model(name, **TINY)


def test_variants_are_registered():
    names = boxer.list_models("boxer2d*")
    for n in [
        "boxer2d",
        "boxer2d_r50",
        "boxer2d_r101",
        "boxer2d_r18_lite",
        "boxer2d_r50_mask",
        "boxer2d_r101_mask",
        "boxer2d_r18_lite_mask",
    ]:
        assert n in names


def test_forward_backward(model):
    images, pad, targets = _batch()
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model(images, pad, targets)
    layers = ["_0", ""]
    bases = ["loss_ce", "loss_bbox", "loss_giou"] + (["loss_mask", "loss_dice"] if model.with_masks else [])
    expected = {b + s for b in bases for s in layers} | {b + "_enc_0" for b in bases[:3]} | {"loss"}
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    losses["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_predict_format(model):
    images, pad, targets = _batch()
    model.eval()
    dets = model.predict(images, pad, targets)
    assert len(dets) == 2
    for det, t in zip(dets, targets):
        k = min(model.num_select, model.num_queries * model.num_classes)
        assert det["boxes"].shape == (k, 4) and det["scores"].shape == (k,) and det["labels"].shape == (k,)
        assert det["labels"].dtype == torch.long and int(det["labels"].max()) < 3
        assert torch.isfinite(det["scores"]).all() and torch.isfinite(det["boxes"]).all()
        h0, w0 = t["orig_size"].tolist()
        assert float(det["boxes"][:, 2].max()) <= w0 + 1e-3 and float(det["boxes"][:, 3].max()) <= h0 + 1e-3
        if model.with_masks:
            assert det["masks"].shape == (k, h0, w0) and det["masks"].dtype == torch.bool
        else:
            assert "masks" not in det


def test_state_dict_round_trip(name, model, tmp_path):
    images, pad, targets = _batch()
    model.eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    torch.manual_seed(123)
    clone = boxer.create_model(name, **TINY).eval()
    clone.load_state_dict(load_file(tmp_path / "model.safetensors"))
    for da, db in zip(model.predict(images, pad, targets), clone.predict(images, pad, targets)):
        assert set(da) == set(db)
        assert all(torch.equal(da[k], db[k]) for k in da)


def test_built_from_keywords_and_modules():
    """Style item 3: the model is assembled from plain keyword constructors, no config dicts."""
    transformer = BoxTransformer(32, num_heads=4, enc_layers=1, dec_layers=1, ffn_dim=32)
    model = BoxeR2D(create_backbone("resnet18"), transformer, num_classes=2, num_queries=5, aux_loss=False)
    images, pad, targets = _batch(with_masks=False)
    for t in targets:
        t["labels"] = t["labels"].clamp(max=1)
    losses = model(images, pad, targets)
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou", "loss"}


def test_overrides_reach_the_modules():
    m = boxer.create_model("boxer2d", backbone="timm:resnet18", **{**TINY, "dec_layers": 3})
    assert (
        len(m.transformer.decoder.layers) == 3 and m.num_queries == 6 and m.head.class_embed.out_features == 3
    )
    assert m.backbone.out_strides == [8, 16, 32]
    lite = boxer.create_model("boxer2d_r18_lite_mask")
    assert lite.transformer.decoder.layers[0].residual_mode == "v2" and lite.transformer.dim == 128


def test_bad_targets_name_the_image_and_box():
    model = boxer.create_model("boxer2d_r18_lite", **TINY)
    images, pad, targets = _batch(with_masks=False)
    targets[1]["boxes"][1] = torch.tensor([40.0, 5, 20, 30])  # x2 < x1
    with pytest.raises(BoxerError, match="image id 11.*box 1"):
        model(images, pad, targets)
    images, pad, targets = _batch(with_masks=False)
    targets[0]["labels"][0] = 7
    with pytest.raises(BoxerError, match="image id 10.*label 7"):
        model(images, pad, targets)
    mask_model = boxer.create_model("boxer2d_r18_lite_mask", **TINY)
    with pytest.raises(BoxerError, match="image id 10.*masks"):
        mask_model(*_batch(with_masks=False))


def test_param_groups():
    model = boxer.create_model("boxer2d_r18_lite", **TINY)
    groups = {g["name"]: g for g in model.param_groups(1e-4, lr_backbone=1e-5)}
    assert groups["backbone"]["lr"] == 1e-5 and groups["linear_box"]["lr"] == pytest.approx(1e-5)
    assert groups["rest"]["lr"] == 1e-4
    n_params = sum(len(g["params"]) for g in groups.values())
    assert n_params == sum(1 for p in model.parameters() if p.requires_grad)
    ids = {id(p) for p in groups["linear_box"]["params"]}
    assert all(("linear_box" in n) == (id(p) in ids) for n, p in model.named_parameters() if p.requires_grad)
    faster = boxer.create_model("boxer2d_r18_lite", lr_linear_box_mult=0.5, **TINY)
    groups = {g["name"]: g for g in faster.param_groups(1e-4, lr_backbone=1e-5)}
    assert groups["linear_box"]["lr"] == pytest.approx(5e-5)  # the model owns its multiplier


def test_class_aware_encoder_learns_the_labels():
    """`enc_class_aware`: the proposal head has one output per class, the tokens are ranked by their
    best class score, and the encoder's class loss sees the labels (it changes with them)."""
    torch.manual_seed(0)
    model = boxer.create_model("boxer2d_r18_lite", **TINY, enc_class_aware=True).train()
    assert model.transformer.proposals.enc_detector.class_embed.out_features == 3
    images, pad, targets = _batch(with_masks=False)
    losses = model(images, pad, targets)
    losses["loss"].backward()
    assert model.transformer.proposals.enc_detector.class_embed.weight.grad.abs().sum() > 0
    relabelled = [{**t, "labels": (t["labels"] + 1) % 3} for t in targets]
    torch.manual_seed(0)
    again = model(images, pad, relabelled)
    assert not torch.equal(again["loss_ce_enc_0"], losses["loss_ce_enc_0"])
    torch.manual_seed(0)
    agnostic = boxer.create_model("boxer2d_r18_lite", **TINY).train()
    assert agnostic.transformer.proposals.enc_detector.class_embed.out_features == 1
    base = agnostic(images, pad, targets)
    assert torch.equal(agnostic(images, pad, relabelled)["loss_ce_enc_0"], base["loss_ce_enc_0"])


@pytest.mark.parametrize("masks", [False, True])
def test_box_refinement_chains_the_layers(masks):
    """`box_refine`: layer l + 1 attends through layer l's detached predicted boxes; training (with
    denoising queries), prediction and masks run; every parameter still gets a gradient."""
    name = "boxer2d_r18_lite_mask" if masks else "boxer2d_r18_lite"
    torch.manual_seed(0)
    model = boxer.create_model(name, **{**TINY, "dec_layers": 3}, box_refine=True, dn_groups=2).train()
    images, pad, targets = _batch(with_masks=masks)
    losses = model(images, pad, targets)
    assert all(torch.isfinite(v) for v in losses.values()) and "loss_bbox_dn" in losses
    losses["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    model.eval()
    with torch.no_grad():
        for p in model.head.bbox_embed.parameters():  # its last layer starts at zero: boxes = windows
            p.add_(0.1 * torch.randn_like(p))
        out = model._run(images, pad, dense=False)
        refs = out.references
        assert len(refs) == 3 and torch.equal(refs[0], out.proposals.windows)
        for layer in range(2):
            expected = model.head.boxes(out.states[layer].t3, refs[layer])
            torch.testing.assert_close(refs[layer + 1], expected)
            assert not torch.equal(refs[layer + 1], refs[layer])
    dets = model.predict(images, pad, targets)
    assert all(torch.isfinite(d["boxes"]).all() for d in dets)
    if masks:
        assert dets[0]["masks"].shape[1:] == tuple(targets[0]["orig_size"].tolist())
