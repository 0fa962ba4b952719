"""Backbone pretraining: a tiny run, the exported names load into the detector's backbone."""

import json

import pytest
import torch
from safetensors.torch import load_file

import boxer
from boxer.engine.pretrain import PretrainConfig, export_names, pretrain_backbone
from boxer.errors import BoxerError
from boxer.models.backbones import create_backbone


def test_tiny_run_writes_loadable_weights(tmp_path, fashion_root):
    out = tmp_path / "bb.safetensors"
    cfg = PretrainConfig(
        out=str(out), size=32, epochs=0.004, batch_size=16, val_size=64, workers=0,
        fashion_root=str(fashion_root), progress=False,
    )  # fmt: skip
    report = pretrain_backbone(cfg)
    assert report["steps"] >= 1 and 0.0 <= report["val_top1"] <= 100.0
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == report["steps"]
    assert not list(tmp_path.glob(".*tmp"))
    weights = load_file(str(out))
    assert "conv1.weight" in weights and "layer4.1.bn2.running_var" in weights
    model = boxer.create_model("boxer2d_r18_lite", num_classes=3, pretrained_backbone=str(out))
    conv1 = model.backbone.conv1.weight
    assert torch.equal(conv1, weights["conv1.weight"])
    bn = model.backbone.layer4[1].bn2
    assert torch.equal(bn.running_var, weights["layer4.1.bn2.running_var"])


def test_export_round_trip_names():
    net = create_backbone("resnet18", frozen_bn=False)
    names = export_names(net)
    fresh = create_backbone("resnet18", frozen_bn=False)
    assert set(names) >= {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight"}
    assert not any(k.startswith(("stem.", "layers.")) for k in names)
    assert len(names) == len(fresh.state_dict())


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"something.weight": torch.zeros(2)}, str(bad))
    with pytest.raises(BoxerError, match="bad.safetensors: not ResNet-18 weights"):
        boxer.create_model("boxer2d_r18_lite", num_classes=3, pretrained_backbone=str(bad))


def test_bad_out_suffix(tmp_path):
    with pytest.raises(BoxerError, match="safetensors"):
        pretrain_backbone(PretrainConfig(out=str(tmp_path / "x.pt")))


def test_excluded_classes_leave_pretraining(tmp_path, fashion_root):
    from boxer.engine.pretrain import _without_classes

    images = torch.zeros(10, 28, 28, dtype=torch.uint8)
    kept_images, labels, num_classes = _without_classes(images, torch.arange(10), "Trouser,Bag")
    assert num_classes == 8 and len(kept_images) == 8
    assert labels.tolist() == list(range(8))  # renumbered over the kept classes, order kept
    out = tmp_path / "bb.safetensors"
    cfg = PretrainConfig(
        out=str(out), size=32, epochs=0.004, batch_size=16, val_size=64, workers=0,
        fashion_root=str(fashion_root), progress=False, exclude_classes="Trouser,Bag",
    )  # fmt: skip
    report = pretrain_backbone(cfg)
    assert report["excluded_classes"] == ["Trouser", "Bag"]
    with pytest.raises(BoxerError, match="--exclude-classes: unknown class 'Hat'"):
        pretrain_backbone(PretrainConfig(out=str(out), exclude_classes="Hat", fashion_root=str(fashion_root)))
