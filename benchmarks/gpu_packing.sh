#!/bin/bash
# Runs per hour when K runs of the default DCGAN share one GPU: the same bench (RUNS runs of
# STEPS steps on glyphs, batch 128) with `--gpus 0 --runs-per-gpu K` for K = 1, 2, 4, 8.
# Usage: [RUNS=8] [STEPS=2000] [PYTHON=python3] bash benchmarks/gpu_packing.sh OUTDIR
set -u
OUT=${1:?usage: bash benchmarks/gpu_packing.sh OUTDIR}
RUNS=${RUNS:-8}
STEPS=${STEPS:-2000}
source "$(dirname "$0")/gpu_common.sh"
for K in 1 2 4 8; do
    start=$(date +%s.%N)
    step "pack-$K" 3600 ${PYTHON:-python3} -m gantricks bench --combos none --seeds "$RUNS" \
        --steps "$STEPS" --num-samples 5000 --gpus 0 --runs-per-gpu "$K" --out "$OUT/k$K"
    end=$(date +%s.%N)
    python3 -c "w = $end - $start; print(f'K=$K: {w:.0f} s for $RUNS runs, {$RUNS * 3600 / w:.1f} runs/hour')"
done | tee "$OUT.log"
