#!/usr/bin/env bash
# The GPU checks of issue 16, as one prepared script for the lent accelerator machine:
#   bash scripts/gpu_checks.sh [BOXOBAN_DIR]
# 1. the CUDA tests (tests/test_cuda.py: every command on device=cuda, the torch Sokoban batch
#    on CUDA equal to the CPU's);
# 2. steps per second of the torch Sokoban batch on CUDA against the numba batch on the CPU;
# 3. the boxoban preset of clm run for a few rounds on CUDA, timed;
# 4. bf16 autocast against float32 for the GAN and the DQN on CUDA.
# Each figure goes to ${OUT:-gpu-out}/*.json; nvidia-smi's line names the device.
set -uo pipefail
OUT=${OUT:-gpu-out}
DATA=${1:-${CLM_BOXOBAN_DIR:-../shared/data/boxoban}}
mkdir -p "$OUT"
PY=.venv/bin/python
[ -x "$PY" ] || { make setup >/dev/null && PY=.venv/bin/python; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
export CLM_BOXOBAN_DIR="$DATA"
timeout 300 $PY -m pytest -q tests/test_cuda.py 2>&1 | tail -20 | tee "$OUT/cuda_tests.txt"
timeout 180 $PY benchmarks/sim_speed.py --cuda --batch 4096 --repeats 3 --single-steps 2000 --gym-sokoban-steps 0 \
    2>&1 | tail -1 | tee "$OUT/sim_speed.json"
timeout 240 $PY -m clm run --preset boxoban --data "boxoban:$DATA" --out "$OUT/boxoban-run" --json device=cuda \
    rounds=3 eval_every=3 report=false 2>/dev/null | tail -1 | tee "$OUT/boxoban_preset.json"
for amp in false true; do
  timeout 120 $PY -m clm gan train --out "$OUT/gan-amp-$amp" --json device=cuda amp=$amp steps=2000 2>/dev/null \
      | tail -1 > "$OUT/gan_amp_$amp.json"
  timeout 120 $PY -m clm dqn train --env CartPole-v1 --out "$OUT/dqn-amp-$amp" --json device=cuda amp=$amp \
      total_steps=30000 eval_interval=0 2>/dev/null | tail -1 > "$OUT/dqn_amp_$amp.json"
done
rm -rf "$OUT"/*/checkpoints "$OUT"/*/tb
echo "done: $OUT"
