#!/usr/bin/env bash
# A real mini study by hand (what `curvnet sweep` automates): iris, wine and diabetes × two
# sizes × adam/sgd × relu/sigmoid, 300 steps with 51 curvature and model checkpoints each, and
# the index.jsonl of docs/analysis.md §1. About a minute on one core.
#
#   tests/analysis/mini_study.sh OUT [CURVNET]     then: curvnet analyze OUT
set -euo pipefail
out="$1"
curvnet="${2:-build/cpu/curvnet}"
mkdir -p "$out/runs"
: > "$out/index.jsonl"
i=0
for ds in iris wine diabetes; do for size in small medium; do for opt in adam sgd; do for act in relu sigmoid; do
  if [ "$size" = small ]; then hidden='[6]'; else hidden='[16, 16]'; fi
  if [ "$ds" = diabetes ]; then loss=mse; else loss=cross_entropy; fi
  if [ "$opt" = sgd ]; then lr=0.05; else lr=0.01; fi
  cat > "$out/config_$i.toml" <<EOF
[data]
dataset = "$ds"
batch_size = 32
[model]
hidden = $hidden
activation = "$act"
[loss]
kind = "$loss"
[optim]
name = "$opt"
lr = $lr
[train]
steps = 300
seed = $i
log_every = 5
device = "cpu"
eval_every = 6
[checkpoint]
every = 6
[diagnostics]
every = 6
kinds = ["loss", "local"]
EOF
  start=$(date +%s.%N)
  status=done
  OMP_NUM_THREADS=1 "$curvnet" train "$out/config_$i.toml" --out "$out/runs/$i" > "$out/runs/$i.log" 2>&1 || status=failed
  wall=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$start" "$(date +%s.%N)")
  printf '{"index": %d, "point": {"data.dataset": "%s", "size": "%s", "optim.name": "%s", "model.activation": "%s"}, "status": "%s", "run_dir": "runs/%d", "wall_s": %s}\n' \
    "$i" "$ds" "$size" "$opt" "$act" "$status" "$i" "$wall" >> "$out/index.jsonl"
  i=$((i + 1))
done; done; done; done
echo "$out/index.jsonl: $i runs"
