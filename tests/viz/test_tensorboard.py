"""The box-attention picture `boxer train` writes to TensorBoard (`boxer/viz/tensorboard.py`)."""

from __future__ import annotations

from torch import nn

from boxer.viz.tensorboard import attention_image


def test_training_adds_the_attention_picture_at_each_evaluation(viz_boxes_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(viz_boxes_run / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert "val/box_attention" in acc.Tags()["images"]
    events = acc.Images("val/box_attention")
    assert [e.step for e in events] == [4, 8]  # after each of the two evaluations
    assert events[0].width == 4 * 228 + 8 and events[0].height == 244 + 56


def test_no_picture_for_a_model_without_box_attention():
    assert attention_image(nn.Linear(2, 2), [1]) is None


def test_only_box_attention_detectors_get_the_picture():
    from boxer.engine.runner import build_model
    from boxer.viz.tensorboard import is_box_attention_model

    small = {"dim": 32, "enc_layers": 1, "dec_layers": 1}
    assert is_box_attention_model(build_model("boxer2d_r18_lite", num_classes=3, model_kwargs=small))
    assert not is_box_attention_model(build_model("detr_r18_lite", num_classes=3, model_kwargs={}))
