"""Every registered DETR variant at tiny sizes: losses, gradients, predict format, state dicts, keywords."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import load_file, save_file

import boxer
from boxer.errors import BoxerError
from boxer.models.backbones import create_backbone
from boxer.models.detr import DETR, DETRTransformer

TINY = {
    "num_classes": 3,
    "num_queries": 6,
    "enc_layers": 1,
    "dec_layers": 2,
    "dim": 32,
    "ffn_dim": 32,
    "num_heads": 4,
}
H, W = 64, 96


def _batch():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, H, W, generator=gen)
    pad = torch.zeros(2, H, W, dtype=torch.bool)
    pad[1, :, 72:] = True  # image 1 is 64 x 72
    images[1, :, :, 72:] = 0
    targets = []
    for i, (w, boxes, labels) in enumerate(
        [(W, [[8.0, 4, 50, 40]], [2]), (72, [[0.0, 10, 30, 60], [40, 5, 70, 30]], [0, 1])]
    ):
        targets.append(
            {
                "boxes": torch.tensor(boxes),
                "labels": torch.tensor(labels),
                "image_id": 10 + i,
                "size": torch.tensor([H, w]),
                "orig_size": torch.tensor([2 * H, 2 * w]),
            }
        )
    return images, pad, targets


@pytest.fixture(scope="module", params=boxer.list_models("detr*"))
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(name):
    torch.manual_seed(0)
    return boxer.create_model(name, **TINY)


def test_variants_are_registered():
    assert {"detr", "detr_r50", "detr_r18_lite"} <= set(boxer.list_models("detr*"))


def test_forward_backward(model):
    images, pad, targets = _batch()
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model(images, pad, targets)
    expected = {b + s for b in ("loss_ce", "loss_bbox", "loss_giou") for s in ("_0", "")} | {"loss"}
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
        assert det.keys() == {"boxes", "scores", "labels"}
        assert det["boxes"].shape == (6, 4) and det["scores"].shape == (6,) and det["labels"].shape == (6,)
        assert (
            det["labels"].dtype == torch.long
            and 0 <= int(det["labels"].min()) <= int(det["labels"].max()) < 3
        )
        assert bool(((det["scores"] > 0) & (det["scores"] <= 1)).all())
        h0, w0 = t["orig_size"].tolist()
        assert float(det["boxes"].min()) >= 0 and float(det["boxes"][:, 2].max()) <= w0 + 1e-3
        assert float(det["boxes"][:, 3].max()) <= h0 + 1e-3
        assert bool((det["boxes"][:, 2:] >= det["boxes"][:, :2]).all())


def test_state_dict_round_trip(name, model, tmp_path):
    images, pad, targets = _batch()
    model.eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    torch.manual_seed(123)
    clone = boxer.create_model(name, **TINY).eval()
    clone.load_state_dict(load_file(tmp_path / "model.safetensors"))
    for da, db in zip(model.predict(images, pad, targets), clone.predict(images, pad, targets)):
        assert all(torch.equal(da[k], db[k]) for k in da)


def test_built_from_keywords_and_modules():
    """Style item 3: plain keyword constructors with the sub-modules injected."""
    transformer = DETRTransformer(32, num_heads=4, enc_layers=1, dec_layers=1, ffn_dim=32)
    net = create_backbone("resnet18", out_indices=(4,))
    model = DETR(net, transformer, num_classes=3, num_queries=5, aux_loss=False)
    assert set(model(*_batch())) == {"loss_ce", "loss_bbox", "loss_giou", "loss"}


def test_overrides_reach_the_modules():
    m = boxer.create_model("detr", backbone="timm:resnet18", **{**TINY, "dec_layers": 3})
    assert len(m.transformer.decoder) == 3 and m.num_queries == 6 and m.class_embed.out_features == 4
    assert m.backbone.out_strides[-1] == 32
    lite = boxer.create_model("detr_r18_lite", backbone_kwargs={"frozen_stages": 2})
    assert lite.transformer.dim == 128 and len(lite.transformer.encoder) == 3 and lite.num_queries == 100
    assert lite.transformer.encoder[0].ffn[0].out_features == 512 and lite.criterion.eos_coef == 0.1
    assert lite.backbone.out_strides == [32] and lite.input_proj.in_channels == 512
    frozen = [n for n, p in lite.backbone.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("conv1.", "bn1.", "layer1.")) for n in frozen)
    paper = boxer.create_model("detr_r50")
    assert paper.input_proj.in_channels == 2048 and paper.transformer.encoder[0].ffn[0].out_features == 2048
    assert len(paper.transformer.decoder) == 6 and paper.query_embed.num_embeddings == 100


def test_pretrained_backbone_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    weights = torchvision.models.resnet18().state_dict()
    save_file(weights, tmp_path / "r18.safetensors")
    m = boxer.create_model("detr_r18_lite", pretrained_backbone=str(tmp_path / "r18.safetensors"), **TINY)
    assert torch.equal(m.backbone.layer4[1].conv2.weight, weights["layer4.1.conv2.weight"])


def test_bad_targets_name_the_image_and_box():
    model = boxer.create_model("detr_r18_lite", **TINY)
    images, pad, targets = _batch()
    targets[1]["boxes"][1] = torch.tensor([40.0, 5, 20, 30])  # x2 < x1
    with pytest.raises(BoxerError, match="image id 11.*box 1"):
        model(images, pad, targets)
    images, pad, targets = _batch()
    del targets[0]["orig_size"]
    with pytest.raises(BoxerError, match="image id 10.*orig_size"):
        model.predict(images, pad, targets)


def test_param_groups():
    model = boxer.create_model("detr_r18_lite", **TINY, backbone_kwargs={"frozen_stages": 1})
    groups = {g["name"]: g for g in model.param_groups(1e-4, lr_backbone=1e-5)}
    assert set(groups) == {"backbone", "rest"}
    assert groups["backbone"]["lr"] == 1e-5 and groups["rest"]["lr"] == 1e-4
    assert sum(len(g["params"]) for g in groups.values()) == sum(
        1 for p in model.parameters() if p.requires_grad
    )
    ids = {id(p) for p in groups["backbone"]["params"]}
    assert all(
        n.startswith("backbone.") == (id(p) in ids) for n, p in model.named_parameters() if p.requires_grad
    )
