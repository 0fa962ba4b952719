#!/usr/bin/env bash
# The main job on the bundled default. Filled in by the data and training issues.
set -euo pipefail
data=${1:-data/fashion-scenes}
run=${2:-runs/demo}
echo "demo: data=$data run=$run"
