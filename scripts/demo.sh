#!/usr/bin/env bash
# The main job on the bundled default (`make demo`): FashionScenes -> the dataset doctor -> a
# backbone pretrained on Fashion-MNIST items -> BoxeR-2D lite trained on CPU -> the COCO table on
# val with per-class AP50 -> predictions on six val images (a ground truth / prediction grid) -> a
# closing summary.
# Usage: scripts/demo.sh [DATA_DIR] [RUN_DIR]
#   DEMO_CONFIG=fashion_scenes_demo_mask scripts/demo.sh   trains the mask variant instead (longer).
#   DEMO_SET="max_minutes=1" scripts/demo.sh                 extra `boxer train --set` overrides.
set -euo pipefail
data=${1:-data/fashion-scenes}
run=${2:-runs/demo}
config=${DEMO_CONFIG:-fashion_scenes_demo}
boxer=${BOXER:-.venv/bin/boxer}
[ -x "$boxer" ] || boxer=boxer
python=$(dirname "$boxer")/python
[ -x "$python" ] || python=python3
backbone=${DEMO_BACKBONE:-data/pretrained/resnet18-fashion-items.safetensors}
start=$(date +%s)
# Torch threads: one per idle core. On a shared machine a thread that must wait for a busy core
# stalls every parallel region (measured here: 2 threads with one core taken by another job ran a
# ResNet-18 training step 5-8x slower than 1 thread). The load average lags the machine's state (it
# still counts this script's own setup), so the demo samples /proc/stat over one second and counts
# the cores that were at least half idle. DEMO_THREADS overrides.
cpus=$(nproc)
threads=${DEMO_THREADS:-$("$python" - <<'PY'
import os, time
def sample():
    rows = [line.split() for line in open("/proc/stat") if line.startswith("cpu") and line[3] != " "]
    return [(int(r[4]) + int(r[5]), sum(int(v) for v in r[1:8])) for r in rows]  # idle+iowait, total
a = sample(); time.sleep(1.0); b = sample()
idle = sum(1 for (i0, t0), (i1, t1) in zip(a, b) if t1 > t0 and (i1 - i0) / (t1 - t0) >= 0.5)
print(max(1, min(idle, os.cpu_count() or 1)))
PY
)}
export OMP_NUM_THREADS=$threads
stamp() { echo "   [$(( $(date +%s) - start )) s]"; }
echo "demo: data=$data run=$run config=$config"
echo "      $cpus CPUs, $threads idle over 1 s (1-min load $(cut -d' ' -f1 /proc/loadavg)): $threads torch thread(s) (DEMO_THREADS overrides)"

# 1. The dataset: generated once (default sizes, seed 0); the folder appears atomically, so its
#    annotation files existing means it is complete.
if [ -f "$data/annotations/instances_train.json" ] && [ -f "$data/annotations/instances_val.json" ]; then
  echo "== FashionScenes already in $data (delete it to regenerate)"
else
  echo "== generating FashionScenes into $data"
  "$boxer" data fashion-scenes --out "$data" --seed 0 >/dev/null
fi
stamp

# 2. The doctor refuses bad data (exit 1, one line per problem).
for split in train val; do
  echo "== boxer data check ($split)"
  "$boxer" data check --images "$data/$split" --annotations "$data/annotations/instances_$split.json"
done

# 3. The dataset summary: instances per class and per COCO size range.
echo "== dataset summary"
"$boxer" data summary --annotations "$data/annotations/instances_train.json" "$data/annotations/instances_val.json"
stamp

# 4. The backbone: ResNet-18 pretrained to classify Fashion-MNIST items (train split only) rendered
#    in the scenes' style, as an ImageNet backbone is for COCO. Made once, then reused.
if [ -f "$backbone" ]; then
  echo "== pretrained backbone found: $backbone (delete it to pretrain again)"
else
  echo "== pretraining the ResNet-18 backbone on Fashion-MNIST items (time-capped)"
  "$boxer" pretrain-backbone --backbone resnet18 --out "$backbone" --size 64 --max-minutes "${DEMO_PRETRAIN_MINUTES:-2.5}"
fi
stamp

# 5. Train BoxeR-2D lite (the preset's header explains the recipe); the run ends with the COCO
#    table(s) on val and writes last/ and best/.
if [ -e "$run" ]; then
  echo "== moving the previous demo run $run to $run.prev"
  rm -rf "$run.prev" && mv "$run" "$run.prev"
fi
echo "== training (configs/$config.py)"
"$boxer" train --config "$config" --data "$data" --out "$run" --set "model.pretrained_backbone=$backbone" "num_threads=$threads" ${DEMO_SET:-}
stamp

# 6. Predictions on six val images beside their ground truth. The score threshold is the one with
#    the best F1 on the run's own training images (--score auto), so the pictures show what the
#    model finds; grid.png holds all six GT | prediction pairs.
images=("$data"/val/*.png)
images=("${images[@]:0:6}")
echo "== boxer predict on ${#images[@]} val images (ground truth | predictions)"
"$boxer" predict --checkpoint "$run/best" "${images[@]}" --out "$run/predictions" --score auto \
  --gt "$data/annotations/instances_val.json" --grid "$run/predictions/grid.png"
stamp

# 7. What the model attends to and how training went (`boxer viz`, docs/viz.md): the box-attention
#    windows of the first val image's best detection, and the run's curves. The full report (per-class
#    AP, PR curves, confusion matrix) predicts val again: `boxer viz run RUN` (printed below).
echo "== boxer viz: attention of ${images[0]##*/}, training curves"
{
  "$boxer" viz attention --checkpoint "$run/best" "${images[0]}" --out "$run/viz" --detections 1
  "$boxer" viz run "$run" --out "$run/report" --no-eval
} >/dev/null 2> >(grep -v '^INFO' >&2)
stamp

# 8. Closing summary.
"$python" - "$run" "$(( $(date +%s) - start ))" <<'EOF'
import json, pathlib, sys
run, seconds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
last = [r for r in rows if "bbox/AP" in r][-1]
print("\n== demo summary")
print(f"   box  AP {last['bbox/AP']:.3f}  AP50 {last['bbox/AP50']:.3f}  AP75 {last['bbox/AP75']:.3f}"
      f"   (FashionScenes val, {last['iteration']} iterations)")
if "segm/AP" in last:
    print(f"   mask AP {last['segm/AP']:.3f}  AP50 {last['segm/AP50']:.3f}  AP75 {last['segm/AP75']:.3f}")
per_class = {k.split("/", 2)[2]: v for k, v in last.items() if k.startswith("bbox/AP50/")}
if per_class:
    print("   box AP50 per class (low = the model misses or mislabels that class):")
    width = max(len(name) for name in per_class)
    for name, value in per_class.items():
        shown = f"{value:5.3f}  {'#' * round(20 * value)}" if value >= 0 else "  -    (no val boxes)"
        print(f"     {name:<{width}}  {shown}")
print(f"   run directory   {run}/  (best/ and last/ checkpoints, metrics.jsonl, config.json, log.txt)")
print(f"   TensorBoard     tensorboard --logdir {run}/tb")
print(f"   predictions     {run}/predictions/grid.png  (ground truth | predictions on 6 val images)")
print(f"                   {run}/predictions/  (one PNG per image, results.json)")
print(f"   attention       {run}/viz/  (box-attention windows and sampling points of the best detection)")
print(f"   training curves {run}/report/  (losses, LR, AP; full report: .venv/bin/boxer viz run {run})")
print(f"   evaluate again  .venv/bin/boxer eval --checkpoint {run}/best --data <data dir>")
print(f"   demo time       {seconds / 60:.1f} min (setup not included)")
EOF
