#!/usr/bin/env bash
# Every GPU figure in benchmarks/RESULTS.md, in one go, on a machine with one CUDA GPU.
# Run from the repository root with gantricks installed: bash benchmarks/gpu_figures.sh OUTDIR
# Each step has its own time limit (LIMIT seconds, default 240) so one slow step cannot take
# the others with it; the log says which step ended how.
set -u
out=${1:-gpu_figures}
py=${PYTHON:-python3}
mkdir -p "$out"
source "$(dirname "$0")/gpu_common.sh"
L=${LIMIT:-240}
common=(--device cuda --steps 200 --warmup 20 --rounds 3)
step b128_s32 "$L" $py benchmarks/throughput.py "${common[@]}" --batch-size 128 --image-size 32 \
    --tricks --json "$out/throughput_cuda_b128_s32.json"
step b128_s64 "$L" $py benchmarks/throughput.py "${common[@]}" --batch-size 128 --image-size 64 \
    --json "$out/throughput_cuda_b128_s64.json"
step b512_s64 "$L" $py benchmarks/throughput.py "${common[@]}" --batch-size 512 --image-size 64 \
    --json "$out/throughput_cuda_b512_s64.json"
step b128_s64_bf16 "$L" $py benchmarks/throughput.py "${common[@]}" --batch-size 128 --image-size 64 \
    --precision bf16 --json "$out/throughput_cuda_b128_s64_bf16.json"
step b512_s64_bf16 "$L" $py benchmarks/throughput.py "${common[@]}" --batch-size 512 --image-size 64 \
    --precision bf16 --json "$out/throughput_cuda_b512_s64_bf16.json"
step b512_s64_bf16_compile "$L" $py benchmarks/throughput.py "${common[@]}" --batch-size 512 \
    --image-size 64 --precision bf16 --compile --json "$out/throughput_cuda_b512_s64_bf16_compile.json"
step eval_50k "$L" $py benchmarks/eval_throughput.py --device cuda --num-samples 50000 --batch-size 500
step no_sync "$L" $py -m pytest -q -p no:cacheprovider tests/test_no_sync.py
step default_train "$L" $py -m gantricks train --device cuda --out-dir "$out/runs"
