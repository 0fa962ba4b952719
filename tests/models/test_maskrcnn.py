"""Mask R-CNN (tiny BoT backbone) and Faster R-CNN (ResNet-18) behind the detector protocol, tiny inputs."""

from __future__ import annotations

import json

import pytest
import torch

import boxer
from boxer.errors import BoxerError

TINY = {
    "num_classes": 3,
    "backbone": "bot50",
    "backbone_kwargs": {"layers": (1, 1, 1, 1), "widths": (8, 8, 8, 16), "stem_width": 8, "img_size": 64},
    "fpn_channels": 16,
    "representation_size": 32,
    "mask_layers": (16,),
    "rpn_pre_nms_top_n_train": 50,
    "rpn_post_nms_top_n_train": 20,
    "rpn_pre_nms_top_n_test": 50,
    "rpn_post_nms_top_n_test": 20,
    "box_batch_size_per_image": 16,
    "box_score_thresh": 0.0,
}


def _batch():
    """Two images padded to 64x80; the second is 50x60 before padding and was downscaled by 2."""
    images = torch.randn(2, 3, 64, 80)
    pad = torch.zeros(2, 64, 80, dtype=torch.bool)
    pad[1, 50:], pad[1, :, 60:] = True, True
    masks = torch.zeros(2, 64, 80, dtype=torch.uint8)
    masks[0, 10:30, 10:40] = 1
    masks[1, 5:20, 5:20] = 1
    targets = [
        {
            "boxes": torch.tensor([[10.0, 10, 40, 30], [5, 40, 30, 60]]),
            "labels": torch.tensor([0, 2]),
            "masks": masks,
            "image_id": 1,
            "size": torch.tensor([64, 80]),
            "orig_size": torch.tensor([64, 80]),
        },
        {
            "boxes": torch.tensor([[5.0, 5, 20, 20]]),
            "labels": torch.tensor([1]),
            "masks": masks[1:],
            "image_id": 2,
            "size": torch.tensor([50, 60]),
            "orig_size": torch.tensor([100, 120]),
        },
    ]
    return images, pad, targets


def test_registered_variants() -> None:
    assert {"maskrcnn", "maskrcnn_bot50", "maskrcnn_r50"} <= set(boxer.list_models("maskrcnn*"))


def test_training_losses() -> None:
    torch.manual_seed(0)
    model = boxer.create_model("maskrcnn", **TINY).train()
    assert model.num_classes == 3 and model.with_masks
    losses = model(*_batch())
    expected = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg", "loss"}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    torch.testing.assert_close(losses["loss"], sum(v for k, v in losses.items() if k != "loss"))
    losses["loss"].backward()
    assert model.detector.backbone.body.layer4[0].conv2[0].core.qkv.weight.grad is not None


def test_loss_weights_scale_terms() -> None:
    torch.manual_seed(0)
    a = boxer.create_model("maskrcnn", **TINY).train()
    b = boxer.create_model("maskrcnn", **TINY, loss_weights={"loss_mask": 2.0}).train()
    b.load_state_dict(a.state_dict())
    torch.manual_seed(1)
    la = a(*_batch())
    torch.manual_seed(1)
    lb = b(*_batch())
    torch.testing.assert_close(lb["loss_mask"], 2 * la["loss_mask"])


def test_predict_contract() -> None:
    torch.manual_seed(0)
    model = boxer.create_model("maskrcnn", **TINY).eval()
    images, pad, targets = _batch()
    preds = model.predict(images, pad, targets)
    assert len(preds) == 2
    for pred, (h0, w0) in zip(preds, [(64, 80), (100, 120)]):
        k = pred["boxes"].shape[0]
        assert pred["boxes"].shape == (k, 4) and pred["scores"].shape == (k,) and pred["labels"].shape == (k,)
        assert pred["masks"].shape == (k, h0, w0) and pred["masks"].dtype == torch.bool
        if k:
            assert 0 <= int(pred["labels"].min()) and int(pred["labels"].max()) < 3
            assert (
                float(pred["boxes"][:, 2].max()) <= w0 + 1e-3
                and float(pred["boxes"][:, 3].max()) <= h0 + 1e-3
            )
    assert preds[1]["boxes"].shape[0] > 0
    # boxes of image 2 live in its original 100x120 frame: twice the 50x60 network frame
    assert float(preds[1]["boxes"][:, 2:].max()) > 60


def test_forward_needs_training_mode() -> None:
    model = boxer.create_model("maskrcnn", **TINY).eval()
    with pytest.raises(ValueError, match="predict"):
        model(*_batch())


def test_empty_targets_train() -> None:
    torch.manual_seed(0)
    model = boxer.create_model("maskrcnn", **TINY).train()
    images, pad, targets = _batch()
    targets[1] = {
        **targets[1],
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.long),
        "masks": torch.zeros(0, 64, 80, dtype=torch.uint8),
    }
    losses = model(images, pad, targets)
    assert torch.isfinite(losses["loss"])


def test_boxer_train_and_eval_end_to_end(fashion_scenes_tiny, tmp_path, capsys) -> None:
    """`boxer train --model maskrcnn` (tiny BoT backbone) and `boxer eval`: engine, checkpoints and
    the COCO evaluator (bbox and segm tables) on the tiny FashionScenes."""
    from boxer.cli.main import main

    out = tmp_path / "run"
    kw = TINY["backbone_kwargs"]
    argv = [
        "train", "--model", "maskrcnn", "--data", str(fashion_scenes_tiny), "--epochs", "1",
        "--out", str(out), "--image-size", "96", "--batch-size", "2", "--workers", "0",
        "--set", "model.backbone=bot50", f"model.backbone_kwargs={kw!r}", "model.fpn_channels=16",
        "model.representation_size=32", "model.mask_layers=(16,)", "max_size=96", "progress=false",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    assert (out / "last" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "last"), "--data", str(fashion_scenes_tiny)]) == 0
    printed = capsys.readouterr().out
    assert "bbox" in printed and "segm" in printed


# ---------------------------------------------------------------- Faster R-CNN

TINY_FASTER = {
    "num_classes": 3,
    "fpn_channels": 16,
    "representation_size": 32,
    "rpn_pre_nms_top_n_train": 50,
    "rpn_post_nms_top_n_train": 20,
    "rpn_pre_nms_top_n_test": 50,
    "rpn_post_nms_top_n_test": 20,
    "box_batch_size_per_image": 16,
    "box_score_thresh": 0.0,
}


def _boxes_batch():
    images, pad, targets = _batch()
    return images, pad, [{k: v for k, v in t.items() if k != "masks"} for t in targets]


def test_faster_rcnn_registered() -> None:
    assert {"fasterrcnn", "fasterrcnn_r18_fpn"} <= set(boxer.list_models("fasterrcnn*"))
    model = boxer.create_model("fasterrcnn_r18_fpn", num_classes=10)
    assert not model.with_masks and model.num_classes == 10
    anchors = model.detector.rpn.anchor_generator
    assert anchors.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert model.detector.backbone.fpn.layer_blocks[0][0].out_channels == 128
    assert type(model.detector.backbone.body.bn1).__name__ == "FrozenBatchNorm2d"
    generic = boxer.create_model("fasterrcnn", num_classes=10, backbone="resnet18")
    assert generic.detector.rpn.anchor_generator.sizes[0] == (32,)  # torchvision's COCO anchors
    with pytest.raises(BoxerError, match="boxes-only"):
        boxer.create_model("fasterrcnn_r18_fpn", num_classes=3, with_masks=True)


def test_faster_rcnn_forward_backward_with_frozen_stages() -> None:
    torch.manual_seed(0)
    model = boxer.create_model("fasterrcnn_r18_fpn", **TINY_FASTER, backbone_kwargs={"frozen_stages": 2})
    losses = model.train()(*_boxes_batch())
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss"}
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    body = model.detector.backbone.body
    assert body.conv1.weight.grad is None and body.layer1[0].conv1.weight.grad is None  # frozen
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name


def test_faster_rcnn_loads_a_pretrained_backbone_file(tmp_path) -> None:
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    state = {
        k: v for k, v in resnet18().state_dict().items() if not k.startswith("fc.")
    }  # as pretrain writes
    save_file(state, str(tmp_path / "r18.safetensors"))
    model = boxer.create_model(
        "fasterrcnn_r18_fpn", **TINY_FASTER, pretrained_backbone=str(tmp_path / "r18.safetensors")
    )
    torch.testing.assert_close(
        model.detector.backbone.body.layer4[1].conv2.weight, state["layer4.1.conv2.weight"]
    )


def test_faster_rcnn_predict_contract_under_bf16() -> None:
    torch.manual_seed(0)
    model = boxer.create_model("fasterrcnn_r18_fpn", **TINY_FASTER).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        preds = model.predict(*_boxes_batch())
    assert len(preds) == 2 and preds[1]["boxes"].shape[0] > 0
    for pred, (h0, w0) in zip(preds, [(64, 80), (100, 120)]):
        k = pred["boxes"].shape[0]
        assert set(pred) == {"boxes", "scores", "labels"}
        assert pred["boxes"].shape == (k, 4) and pred["boxes"].dtype == torch.float32  # decoded in fp32
        assert pred["scores"].shape == (k,) and pred["labels"].shape == (k,)
        if k:
            assert 0 <= int(pred["labels"].min()) and int(pred["labels"].max()) < 3
            assert (
                float(pred["boxes"][:, 2].max()) <= w0 + 1e-3
                and float(pred["boxes"][:, 3].max()) <= h0 + 1e-3
            )
    assert float(preds[1]["boxes"][:, 2:].max()) > 60  # image 2's original frame is twice its network frame


def test_faster_rcnn_train_eval_predict_cli(fashion_scenes_tiny, tmp_path, capsys) -> None:
    """`boxer train --model fasterrcnn_r18_fpn` for 2 iterations, then `boxer eval` and `boxer predict`."""
    from boxer.cli.main import main

    out = tmp_path / "run"
    argv = [
        "train", "--model", "fasterrcnn_r18_fpn", "--data", str(fashion_scenes_tiny), "--out", str(out),
        "--batch-size", "2", "--workers", "0", "--set", "max_iters=2", "amp=bf16", "progress=false",
        "model.backbone_kwargs={'frozen_stages': 2}", "model.fpn_channels=32", "model.representation_size=64",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    assert json.loads((out / "last" / "config.json").read_text())["iteration"] == 2
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "last"), "--data", str(fashion_scenes_tiny)]) == 0
    assert "Average Precision" in capsys.readouterr().out
    image = fashion_scenes_tiny / "val" / "000001.png"
    argv = [
        "predict",
        "--checkpoint",
        str(out / "last"),
        str(image),
        "--out",
        str(tmp_path / "pred"),
        "--score",
        "0",
    ]
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    assert (tmp_path / "pred" / "000001.png").is_file()
    assert isinstance(json.loads((tmp_path / "pred" / "results.json").read_text()), list)
