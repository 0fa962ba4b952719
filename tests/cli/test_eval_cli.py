"""`boxer eval`: the COCO tables for box and mask models; refusal without trained weights."""

from __future__ import annotations

import shutil

from cli_helpers import run_cli


def _tables(out: str) -> dict[str, list[str]]:
    tables, current = {}, None
    for line in out.splitlines():
        if line.startswith("IoU metric: "):
            current = tables.setdefault(line.split(": ")[1], [])
        elif current is not None and line.strip().startswith("Average"):
            current.append(line)
    return tables


def test_eval_prints_the_bbox_table(trained_run, fashion_scenes_tiny, capsys):
    code, out, err = run_cli(
        ["eval", "--checkpoint", trained_run / "last", "--data", fashion_scenes_tiny], capsys
    )
    assert code == 0, err
    tables = _tables(out)
    assert list(tables) == ["bbox"] and len(tables["bbox"]) == 12


def test_eval_prints_bbox_and_segm_tables_for_mask_models(
    trained_mask_run, fashion_scenes_tiny, tmp_path, capsys
):
    results = tmp_path / "results.json"
    argv = [
        "eval",
        "--checkpoint",
        trained_mask_run / "best",
        "--data",
        fashion_scenes_tiny,
        "--results",
        results,
    ]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    tables = _tables(out)
    assert list(tables) == ["bbox", "segm"] and all(len(t) == 12 for t in tables.values())
    assert results.exists()


def test_eval_refuses_without_trained_weights(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    code, _, err = run_cli(["eval", "--checkpoint", tmp_path / "nope", "--data", fashion_scenes_tiny], capsys)
    assert code == 1 and "checkpoint not found" in err
    broken = tmp_path / "broken"
    shutil.copytree(trained_run / "last", broken)
    (broken / "model.safetensors").unlink()
    code, _, err = run_cli(["eval", "--checkpoint", broken, "--data", fashion_scenes_tiny], capsys)
    assert code == 1 and "no trained weights" in err and "Traceback" not in err


def test_eval_refuses_other_categories(trained_run, fashion_scenes_tiny, tmp_path, capsys):
    import json

    data = tmp_path / "data"
    shutil.copytree(fashion_scenes_tiny, data)
    path = data / "annotations" / "instances_val.json"
    coco = json.loads(path.read_text())
    coco["categories"] = coco["categories"][:5]
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] <= 5]
    path.write_text(json.dumps(coco))
    code, _, err = run_cli(["eval", "--checkpoint", trained_run / "last", "--data", data], capsys)
    assert code == 1 and "differ from the checkpoint" in err
