#!/usr/bin/env bash
# The GPU checks of issue 16, as one prepared script for the lent accelerator machine:
#   bash scripts/gpu_checks.sh [BOXOBAN_DIR]
# 1. the CUDA tests (tests/test_cuda.py: every command on device=cuda, the torch Sokoban batch
#    on CUDA equal to the CPU's);
# 2. steps per second of the torch Sokoban batch on CUDA against the numba batch on the CPU;
# 3. the boxoban preset of clm run for a few rounds on CUDA, timed;
# 4. bf16 autocast against float32 for the GAN and the DQN on CUDA.
# Each figure goes to ${OUT:-gpu-out}/*.json; nvidia-smi's line names the device.
# Python: $PY, else the project's .venv, else the machine's python3 with src/ on PYTHONPATH (the
# bare GPU machine: its image holds torch and most dependencies; the rest travel as wheels,
# installed by the caller into a folder on PYTHONPATH). The whole script stays under ~8 minutes.
set -uo pipefail
OUT=${OUT:-gpu-out}
DATA=${1:-${CLM_BOXOBAN_DIR:-../shared/data/boxoban}}
mkdir -p "$OUT"
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python
  else PY=python3; export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"; fi
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$OUT/device.txt"
export CLM_BOXOBAN_DIR="$DATA"
t0=$SECONDS
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -25 > "$OUT/cuda_tests.txt"
echo "cuda tests: $((SECONDS - t0)) s"; tail -3 "$OUT/cuda_tests.txt"
timeout 60 $PY benchmarks/sim_speed.py --cuda --batch 4096 --repeats 3 --single-steps 2000 --gym-sokoban-steps 0 \
    2>&1 | tail -1 | tee "$OUT/sim_speed.json"
timeout 120 $PY -m clm run --preset boxoban --data "boxoban:$DATA" --out /tmp/gpu-boxoban-run --json device=cuda \
    rounds=3 eval_every=3 report=false 2>"$OUT/boxoban_preset.err" | tail -1 | tee "$OUT/boxoban_preset.json"
for amp in false true; do
  timeout 45 $PY -m clm gan train --out /tmp/gpu-gan-amp-$amp --json device=cuda amp=$amp steps=1000 2>/dev/null \
      | tail -1 > "$OUT/gan_amp_$amp.json"
  timeout 45 $PY -m clm dqn train --env CartPole-v1 --out /tmp/gpu-dqn-amp-$amp --json device=cuda amp=$amp \
      total_steps=15000 eval_interval=0 2>/dev/null | tail -1 > "$OUT/dqn_amp_$amp.json"
done
echo "done: $OUT after $SECONDS s"
