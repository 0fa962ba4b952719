#!/usr/bin/env bash
# The main job on the bundled default (`make demo`): FashionScenes, the dataset doctor, a summary.
# Training and evaluation are appended by the BoxeR issue.
# Usage: scripts/demo.sh [DATA_DIR] [RUN_DIR]
set -euo pipefail
data=${1:-data/fashion-scenes}
run=${2:-runs/demo}
boxer=${BOXER:-.venv/bin/boxer}
[ -x "$boxer" ] || boxer=boxer
echo "demo: data=$data run=$run"

# 1. The dataset: generated once (default sizes, seed 0); the folder appears atomically, so its
#    annotation files existing means it is complete.
if [ -f "$data/annotations/instances_train.json" ] && [ -f "$data/annotations/instances_val.json" ]; then
  echo "== FashionScenes already in $data (delete it to regenerate)"
else
  echo "== generating FashionScenes into $data"
  "$boxer" data fashion-scenes --out "$data" --seed 0 >/dev/null
fi

# 2. The doctor refuses bad data (exit 1, one line per problem).
for split in train val; do
  echo "== boxer data check ($split)"
  "$boxer" data check --images "$data/$split" --annotations "$data/annotations/instances_$split.json"
done

# 3. The dataset summary: instances per class and per COCO size range.
echo "== dataset summary"
"$boxer" data summary --annotations "$data/annotations/instances_train.json" "$data/annotations/instances_val.json"
