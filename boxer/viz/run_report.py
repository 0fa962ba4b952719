"""`boxer viz run RUN [RUN ...]`: the run report, several runs overlaid.

Writes `curves.png` and `losses.png` (`run_curves.py`), and unless `evaluate=False`,
`per_class_ap.png`, `pr_curves.png` and `confusion_<run>.png` per run (`run_eval.py`), plus the data:
`report.json` (every curve, per-class AP, the PR curves and confusion matrices) and
`results_<run>.json` (the COCO results the evaluation scored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from boxer.viz.figures import save_figure
from boxer.viz.run_curves import curves_figure, losses_figure, series_json
from boxer.viz.run_history import read_history


def _names(runs: list[Path]) -> list[str]:
    """Folder names, made unique with the parent folder's name where two runs share one."""
    names = [r.name for r in runs]
    return [f"{r.parent.name}/{r.name}" if names.count(r.name) > 1 else r.name for r in runs]


def _is_classification(run: Path) -> bool:
    """A `boxer train-cls` run (no COCO evaluation: its report has the curves only)."""
    for config in (run / "config.json", run / "best" / "config.json", run / "last" / "config.json"):
        if config.is_file():
            return json.loads(config.read_text()).get("task") == "classification"
    return False


def write_run_report(
    runs: list[str | Path],
    out_dir: str | Path,
    *,
    evaluate: bool = True,
    score: float = 0.3,
    device: str = "cpu",
) -> dict[str, Any]:
    """Writes the report of `runs` into `out_dir`; returns {"figures": [...], "data": [...]}."""
    paths = [Path(r) for r in runs]
    histories = [read_history(p, n) for p, n in zip(paths, _names(paths))]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = [save_figure(curves_figure(histories), out / "curves.png"),
               save_figure(losses_figure(histories), out / "losses.png")]  # fmt: skip
    report: dict[str, Any] = {"runs": {h.name: series_json(h) for h in histories}}
    data = [out / "report.json"]
    if evaluate:
        figures += _evaluation(histories, out, report, data, score=score, device=device)
    (out / "report.json").write_text(json.dumps(report))
    return {"figures": [str(f) for f in figures], "data": [str(d) for d in data]}


def _evaluation(histories, out: Path, report: dict, data: list, *, score: float, device: str) -> list[Path]:
    from boxer.viz.run_eval import evaluate_run
    from boxer.viz.run_eval_figures import confusion_figure, per_class_ap_figure, pr_figure

    figures = [_classification(h, out, report, data) for h in histories if _is_classification(h.path)]
    detectors = [h for h in histories if not _is_classification(h.path)]
    if not detectors:
        return figures
    results = [(h.name, evaluate_run(h.path, score=score, device=device)) for h in detectors]
    figures += [save_figure(per_class_ap_figure(results), out / "per_class_ap.png"),
                save_figure(pr_figure(results), out / "pr_curves.png")]  # fmt: skip
    for name, res in results:
        safe = name.replace("/", "_")
        figures.append(save_figure(confusion_figure(name, res, score=score), out / f"confusion_{safe}.png"))
        (out / f"results_{safe}.json").write_text(json.dumps(res.records))
        data.append(out / f"results_{safe}.json")
        report["runs"][name]["evaluation"] = {
            "class_names": res.class_names, "ap": res.ap.tolist(), "ap50": res.ap50.tolist(),
            "recall": res.recall.tolist(), "precision_iou50": res.precision50.T.tolist(),
            "confusion": {"score": score, "iou": 0.5, "rows": "true class + no object",
                          "columns": "predicted class + missed", "counts": res.confusion.tolist()},
        }  # fmt: skip
    return figures


def _classification(history, out: Path, report: dict, data: list) -> Path:
    """The test-split confusion matrix of a classification run."""
    from boxer.viz.cls_eval import evaluate_classification_run
    from boxer.viz.run_eval_figures import matrix_figure

    res = evaluate_classification_run(history.path)
    names = res.class_names
    fig = matrix_figure(res.confusion, names, names, xlabel="predicted class", ylabel="true class",
                        title=f"{history.name}: test split, top-1 {res.top1:.1f}%")  # fmt: skip
    report["runs"][history.name]["evaluation"] = {
        "class_names": names, "top1": res.top1, "confusion": res.confusion.tolist(), "split": "test",
    }  # fmt: skip
    return save_figure(fig, out / f"confusion_{history.name.replace('/', '_')}.png")
