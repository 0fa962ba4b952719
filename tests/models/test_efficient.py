"""The efficient-ViT deck's classifiers: parameter counts against the deck's tables (docs/zoo.md) (within
10% where docs/zoo.md claims it), the Fashion-MNIST variants train a step, the detection feature API."""

from __future__ import annotations

import pytest
import torch

import boxer
from boxer.models.backbones import create_backbone

# name -> the deck's parameter count (M) for the rows docs/zoo.md reports within 10%.
DECK_PARAMS = {"emsnet_xtiny": 3.0, "partialformer_b0": 5.3, "partialformer_b1": 8.2, "pvt_v2_b0": 3.7}


@pytest.mark.parametrize(("name", "deck"), DECK_PARAMS.items())
def test_parameters_within_ten_percent_of_the_deck(name: str, deck: float) -> None:
    count = sum(p.numel() for p in boxer.create_model(name).parameters()) / 1e6
    assert abs(count - deck) / deck < 0.10, count


@pytest.mark.parametrize("name", ["emsnet_fm", "mat_fm", "partialformer_fm"])
def test_fashion_variants_train_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = boxer.create_model(name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = model.example_input(4), torch.randint(0, 10, (4,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


def test_mat_stages_one_and_two_are_mlp_only() -> None:
    net = create_backbone("mat2")
    kinds = [{type(b.mixer).__name__ for b in stage if hasattr(b, "mlp")} for stage in net.stages]
    assert kinds == [{"NoneType"}, {"NoneType"}, {"MATAttention"}, {"MATAttention"}]


def test_detection_levels_default_to_strides_8_16_32() -> None:
    net = create_backbone("emsnet_xtiny")
    assert net.out_strides == [8, 16, 32] and net.out_channels == [64, 96, 128]


def test_mask_rcnn_trains_on_an_efficient_backbone() -> None:
    torch.manual_seed(0)
    tiny = {"dims": (8, 16, 16, 32), "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1), "img_size": 64}
    model = boxer.create_model(
        "maskrcnn", num_classes=3, backbone="emsnet_xtiny", backbone_kwargs=tiny, fpn_channels=16,
        representation_size=32, mask_layers=(16,), rpn_post_nms_top_n_train=20, box_batch_size_per_image=16,
    ).train()  # fmt: skip
    assert model.detector.backbone.body.out_strides == [4, 8, 16, 32]
    masks = torch.zeros(1, 64, 80, dtype=torch.uint8)
    masks[0, 10:30, 10:40] = 1
    hw = torch.tensor([64, 80])
    target = {"boxes": torch.tensor([[10.0, 10, 40, 30]]), "labels": torch.tensor([1]), "masks": masks}
    target.update(image_id=1, size=hw, orig_size=hw)
    losses = model(torch.randn(1, 3, 64, 80), torch.zeros(1, 64, 80, dtype=torch.bool), [target])
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert model.detector.backbone.body.stages[2][1].mixer.mixers[0].key_matrix.grad is not None
