"""`boxer.models.boxer2d.convert`: official .ckpt / .pth files -> boxer checkpoint directories that load strictly."""

from __future__ import annotations

import json

import pytest
import torch
from official_helpers import boxer_targets, official_state_dict
from safetensors.torch import load_file

from boxer.data.coco_categories import COCO_CAT_IDS
from boxer.models.boxer2d.convert import convert_official, residual_mode_of
from boxer.engine.runner import load_detector
from boxer.errors import BoxerError

CLASS_ROWS = ("head.class_embed.", "mask_head.predictor.")


def _cheap(depth: int = 50, masks: bool = False) -> dict[str, torch.Tensor]:
    """The official layout with one-element storages (expanded zeros): a file of a few hundred KB."""
    meta = official_state_dict(depth, 91, masks, device="meta")
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in meta.items()}


def test_module_prefixed_pth_loads_strictly_and_every_tensor_lands(tmp_path):
    state = official_state_dict(50, 91, masks=True)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "boxer2d_final.pth")
    config = convert_official(tmp_path / "boxer2d_final.pth", tmp_path / "ckpt")
    assert config["model"] == "boxer2d_r50_mask" and config["model_kwargs"] == {"residual_mode": "v2"}
    assert config["num_classes"] == 80 and config["cat_ids"] == COCO_CAT_IDS
    assert config["class_names"][0] == "person" and config["amp"] == "none"
    model, _ = load_detector(tmp_path / "ckpt", torch.device("cpu"))  # strict: refuses any difference
    assert model.transformer.decoder.layers[0].residual_mode == "v2"
    loaded = model.state_dict()
    for key, value in state.items():
        for target, rows in boxer_targets(key):
            expected = value[rows][COCO_CAT_IDS] if target.startswith(CLASS_ROWS) else value[rows]
            assert torch.equal(loaded[target], expected), f"{key} -> {target}"


def test_ckpt_form_reads_its_model_entry_and_residual_mode(tmp_path):
    official_config = {"model_config": {"boxer2d": {"transformer": {"params": {"residual_mode": "v1"}}}}}
    ckpt = {
        "model": _cheap(101, masks=True),
        "optimizer": {"state": {}},
        "update": 7,
        "config": official_config,
    }
    torch.save(ckpt, tmp_path / "model_7.ckpt")
    config = convert_official(tmp_path / "model_7.ckpt", tmp_path / "out", classes="raw")
    assert config["model"] == "boxer2d_r101_mask" and config["model_kwargs"] == {"residual_mode": "v1"}
    assert config["cat_ids"] == list(range(91)) and config["class_names"][1] == "person"
    assert json.loads((tmp_path / "out" / "config.json").read_text())["converted_from"]["classes"] == "raw"
    weights = load_file(tmp_path / "out" / "model.safetensors")
    assert len(weights) == 802 and weights["head.class_embed.weight"].shape == (91, 256)
    override = convert_official(tmp_path / "model_7.ckpt", tmp_path / "out2", residual_mode="v2")
    assert override["model_kwargs"] == {"residual_mode": "v2"}


def test_detection_file_has_no_residual_mode(tmp_path):
    torch.save(_cheap(50), tmp_path / "det.pth")
    config = convert_official(tmp_path / "det.pth", tmp_path / "out")
    assert config["model"] == "boxer2d_r50" and config["model_kwargs"] == {}
    assert residual_mode_of(None) is None and residual_mode_of({"model_config": 3}) is None


class _NotATensor:
    pass


@pytest.mark.parametrize(
    "case, start",
    [
        (
            "mask_into_detection",
            "detector.mask_embed.*: a mask checkpoint (instance-attention decoder) cannot",
        ),
        ("detection_into_mask", "detector.mask_embed.*: missing; a detection checkpoint cannot"),
        ("pickled_object", "not readable with torch.load(weights_only=True)"),
        ("bad_shape", "detector.bbox_embed.layers.2.weight: shape [5, 256] does not fit"),
    ],
)
def test_refusals_are_one_line_naming_file_and_key(tmp_path, case, start):
    path = tmp_path / "official.pth"
    state, model = _cheap(50, masks=case == "mask_into_detection"), None
    if case == "mask_into_detection":
        model = "boxer2d_r50"
    elif case == "detection_into_mask":
        model = "boxer2d_r50_mask"
    elif case == "pickled_object":
        state = {"model": state, "config": _NotATensor()}
    else:
        state["detector.bbox_embed.layers.2.weight"] = torch.zeros(5, 256)
    torch.save(state, path)
    with pytest.raises(BoxerError) as info:
        convert_official(path, tmp_path / "out", model=model)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and start in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_existing_checkpoint_needs_overwrite(tmp_path):
    torch.save(_cheap(50), tmp_path / "det.pth")
    convert_official(tmp_path / "det.pth", tmp_path / "out")
    with pytest.raises(BoxerError, match="--overwrite"):
        convert_official(tmp_path / "det.pth", tmp_path / "out")
    convert_official(tmp_path / "det.pth", tmp_path / "out", overwrite=True)
