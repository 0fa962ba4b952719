"""Fuzzing the COCO annotation loaders (dataset, predict --gt) and the doctor with hypothesis: random
bytes and random JSON shapes either load or raise the one-line `BoxerError`; the doctor always
returns a report. `BOXER_FUZZ_EXAMPLES=2000` runs longer (default 80 examples per test)."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from boxer.data import CocoDetection, check_dataset
from boxer.data.coco_json import load_coco_json
from boxer.engine.ground_truth import load_ground_truth
from boxer.errors import BoxerError

FUZZ = settings(
    max_examples=int(os.environ.get("BOXER_FUZZ_EXAMPLES", 80)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([float("inf"), float("nan"), -1e400, 10**400]),
    st.text(max_size=6),
    st.just("a.png"),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
numbers = st.one_of(st.integers(-2, 40), st.floats(-5, 50), scalars)


def _record(fields: dict) -> st.SearchStrategy:
    """A dict with some of `fields` (each a strategy) and sometimes junk values instead."""
    return st.fixed_dictionaries({}, optional={k: v | json_values for k, v in fields.items()})


images = _record(
    {"id": st.integers(0, 3), "file_name": st.just("a.png"), "width": numbers, "height": numbers}
)
annotations = _record(
    {
        "id": st.integers(0, 5),
        "image_id": st.integers(0, 3),
        "category_id": st.integers(0, 3),
        "bbox": st.lists(numbers, min_size=0, max_size=5),
        "iscrowd": st.integers(0, 2),
        "area": numbers,
        "segmentation": st.one_of(
            st.lists(st.lists(numbers, max_size=8), max_size=2),
            st.fixed_dictionaries(
                {"size": st.lists(st.integers(0, 9), max_size=3), "counts": st.text(max_size=8)}
            ),
        ),
    }
)
categories = _record({"id": st.integers(0, 3), "name": st.text(max_size=4)})
VALID = {
    "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 2], "area": 6, "iscrowd": 0,
         "segmentation": [[1, 1, 4, 1, 4, 3]]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 8, 6], "iscrowd": 1,
         "segmentation": {"size": [6, 8], "counts": [0, 48]}},
    ],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
}  # fmt: skip
FIELDS = [(k, i, f) for k, recs in VALID.items() for i, rec in enumerate(recs) for f in rec]


def _mutate(changes: list[tuple[tuple[str, int, str], object, bool]]) -> dict:
    """VALID with some fields replaced (or deleted when the flag is set)."""
    data = json.loads(json.dumps(VALID))
    for (key, i, name), value, delete in changes:
        if delete:
            data[key][i].pop(name, None)
        else:
            data[key][i][name] = value
    return data


mutated = st.lists(st.tuples(st.sampled_from(FIELDS), json_values, st.booleans()), max_size=3).map(_mutate)
coco_shapes = st.one_of(
    mutated,
    mutated,
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "images": st.lists(images | json_values, max_size=3),
            "annotations": st.lists(annotations | json_values, max_size=4),
            "categories": st.lists(categories | json_values, max_size=3),
        },
    ),
)


def _one_line(err: BoxerError, path) -> None:
    assert str(err).startswith(f"{path}: ") and "\n" not in str(err)


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_random_bytes(tmp_path, data):
    ann = tmp_path / "ann.json"
    ann.write_bytes(data)
    try:
        load_coco_json(ann)
    except BoxerError as err:
        _one_line(err, ann)
    assert check_dataset(None, ann) is not None


@FUZZ
@given(data=coco_shapes, masks=st.booleans())
def test_fuzz_json_shapes_load_or_raise_boxer_error(tmp_path, data, masks):
    """CocoDetection builds (and yields samples) or raises BoxerError, so does predict's --gt loader;
    the doctor always reports."""
    (tmp_path / "img").mkdir(exist_ok=True)
    Image.new("RGB", (8, 6)).save(tmp_path / "img" / "a.png")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    report = check_dataset(tmp_path / "img", ann)
    assert report.ok or report.errors
    try:
        load_ground_truth(ann, [1, 2])  # predict --gt
    except BoxerError as err:
        _one_line(err, ann)
    try:
        dataset = CocoDetection(tmp_path / "img", ann, with_masks=masks)
        for i in range(len(dataset)):
            dataset[i]
    except BoxerError as err:
        _one_line(err, ann if str(err).startswith(str(ann)) else tmp_path / "img")
