"""Official BoxeR-2D state dicts onto boxer's names: layout detection, the rename table, refusals.

The official layouts are built from ../shared/OFFICIAL_BOXER_CHECKPOINTS.md (tests/official_helpers.py);
R101 and most layouts use meta tensors (shapes only), so no 59M-parameter model is allocated here.
"""

from __future__ import annotations

import pytest
import torch
from official_helpers import boxer_targets, official_shapes, official_state_dict

import boxer
from boxer.errors import BoxerError
from boxer.models.boxer2d import official as O


def _boxer_shapes(name: str, num_classes: int = 91, **kw) -> dict[str, torch.Size]:
    with torch.device("meta"):
        model = boxer.create_model(name, num_classes=num_classes, **kw)
    return {k: v.shape for k, v in model.state_dict().items()}


def test_layout_has_the_documented_entry_counts():
    assert len(official_shapes(50)) == 541
    assert len(official_shapes(50, masks=True)) == 547
    assert len(official_shapes(101, masks=True)) == 802


@pytest.mark.parametrize("depth", [50, 101])
@pytest.mark.parametrize("masks", [False, True])
def test_layout_read_and_every_key_fits_the_boxer_model(depth, masks):
    state = official_state_dict(depth, 91, masks, device="meta")
    layout = O.read_layout(state)
    assert (layout.depth, layout.num_classes, layout.with_masks) == (depth, 91, masks)
    assert layout.model_name == f"boxer2d_r{depth}" + ("_mask" if masks else "")
    weights, source = O.to_boxer(state)
    expected = _boxer_shapes(layout.model_name)
    O.check_fits(weights, source, expected, layout.model_name)  # raises on any difference
    assert set(weights) == set(expected)
    want = {b: (k, rows) for k in state for b, rows in boxer_targets(k)}  # the table of the .md
    assert set(want) == set(weights)
    assert all(source[b].startswith(k) for b, (k, _) in want.items())


def test_every_official_tensor_lands_on_the_boxer_tensor_of_the_table():
    state = official_state_dict(50, 91, masks=True)
    weights, _ = O.to_boxer(state)
    landed = 0
    for key, value in state.items():
        for target, rows in boxer_targets(key):
            assert torch.equal(weights[target], value[rows]), f"{key} -> {target}"
            landed += 1
    assert landed == len(weights) == 547  # 12 kernel_indices dropped, 12 in_proj split in two


def test_module_prefix_is_stripped_only_when_every_key_has_it():
    state = {"module.a": torch.zeros(1), "module.b": torch.zeros(1)}
    assert set(O.strip_module_prefix(state)) == {"a", "b"}
    assert set(O.strip_module_prefix({"module.a": torch.zeros(1), "b": torch.zeros(1)})) == {"module.a", "b"}


def test_class_rows_are_selected_in_the_class_head_and_the_mask_predictor():
    weights, _ = O.to_boxer(official_state_dict(50, 91, masks=True))
    picked = O.select_class_rows(weights, [1, 5, 90])
    for key in ("head.class_embed.weight", "head.class_embed.bias", "mask_head.predictor.weight"):
        assert torch.equal(picked[key], weights[key][[1, 5, 90]])
    assert torch.equal(picked["head.bbox_embed.layers.2.weight"], weights["head.bbox_embed.layers.2.weight"])


def _refusal(state: dict, expected: dict | None = None, model: str = "boxer2d_r50") -> str:
    with pytest.raises(BoxerError) as info:
        O.read_layout(state)
        weights, source = O.to_boxer(state)
        O.check_fits(weights, source, expected or _boxer_shapes(model), model)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_refusals_name_the_key_and_the_reason():
    state = official_state_dict(50, device="meta")
    bad_shape = {**state, "transformer.decoder.layers.2.linear1.weight": torch.empty(512, 256, device="meta")}
    assert _refusal(bad_shape).startswith("transformer.decoder.layers.2.linear1.weight: shape [512, 256]")
    unknown = {**state, "transformer.decoder.layers.0.extra_gate.weight": torch.empty(4, device="meta")}
    assert _refusal(unknown).startswith("transformer.decoder.layers.0.extra_gate.weight: boxer2d_r50 has no")
    missing = {k: v for k, v in state.items() if k != "input_proj.1.0.weight"}
    assert _refusal(missing).startswith("neck.lateral.1.0.weight: boxer2d_r50 needs it")
    no_head = {k: v for k, v in state.items() if not k.startswith("detector.class_embed")}
    assert _refusal(no_head).startswith("detector.class_embed.weight: missing")
    short = {k: v for k, v in state.items() if not k.startswith("backbone.layer3.5.")}
    assert "5 blocks" in _refusal(short)


def test_a_mask_decoder_without_a_mask_head_is_refused():
    state = official_state_dict(50, masks=True, device="meta")
    no_head = {k: v for k, v in state.items() if not k.startswith("detector.mask_embed.")}
    message = _refusal(no_head)
    assert message.startswith("transformer.decoder.layers.") and "196 rows" in message
