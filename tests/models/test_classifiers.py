"""Every registered image classifier: builds with keywords only, logits of the right shape, no NaN,
state-dict round trip; the BoTNet parameter claim; the Fashion-MNIST variants train a step."""

from __future__ import annotations

import pytest
import torch

import boxer
from boxer.models.classifiers import ImageClassifier, is_classifier

CLASSIFIERS = [n for n in boxer.list_models() if is_classifier(n)]
IMAGENET = {"resnet50", "bot50", "hybrid50", "vit_s16", "vit_ti16", "swin_t"}
DECK = {
    "emsnet_xxtiny",
    "emsnet_xtiny",
    "emsnet_tiny",
    "mat1",
    "mat2",
    "partialformer_b0",
    "partialformer_b1",
}
IMAGENET |= DECK | {"pvt_v2_b0", "swin_0p7g", "convnext_xt", "halo_0p7g"}  # the deck's 0.7G baselines


def test_the_zoo_is_registered() -> None:
    expected = {"resnet_fm", "bot_fm", "hybrid_fm", "vit_fm", "swin_fm"} | IMAGENET
    assert expected <= set(CLASSIFIERS)
    assert not is_classifier("maskrcnn_bot50")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_logits_and_round_trip(name: str) -> None:
    torch.manual_seed(0)
    model = boxer.create_model(name, num_classes=7).eval()
    assert isinstance(model, ImageClassifier)
    x = model.example_input(2, 64 if name in IMAGENET else None)  # 224 models at 64 px: cheap
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    if name not in IMAGENET:
        clone = boxer.create_model(name, num_classes=7).eval()
        clone.load_state_dict(model.state_dict())
        torch.testing.assert_close(clone(x), logits)


def test_bot50_has_fewer_parameters_than_resnet50() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    bot, r50 = count(boxer.create_model("bot50")), count(boxer.create_model("resnet50"))
    assert bot < r50
    assert round(bot / 1e6, 1) == 20.9 and round(r50 / 1e6, 1) == 25.6  # deck: 20.8M vs 25.5M


@pytest.mark.parametrize("name", ["resnet_fm", "resnet_fm_e2", "bot_fm", "hybrid_fm", "vit_fm", "swin_fm"])
def test_fashion_variants_train_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = boxer.create_model(name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = model.example_input(4), torch.randint(0, 10, (4,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


def test_bot_ablation_is_a_keyword() -> None:
    model = boxer.create_model("bot_fm", mixer="mhsa_qr")
    mixer = model.backbone.layer3[0].conv2[0]
    assert mixer.content is False and mixer.pos_embed is not None
