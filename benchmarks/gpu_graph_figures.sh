#!/usr/bin/env bash
# CUDA-graph figures and the semi-supervised MNIST run, in one go, on one CUDA GPU.
# Run from the repository root with gantricks installed and MNIST under DATA (raw layout):
#   DATA=data bash benchmarks/gpu_graph_figures.sh OUTDIR
# 1. the CUDA tests (graph replay against eager, no sync per step);
# 2. throughput against the reference loop with and without the CUDA graph;
# 3. the semi-supervised run (100 labels, 3 seeds, one process each), stopped cleanly when
#    the time budget (TOTAL seconds for the whole script, default 560) runs out.
set -u
out=${1:-gpu_graph_figures}
py=${PYTHON:-python3}
data=${DATA:-data}
total=${TOTAL:-560}
mkdir -p "$out"
source "$(dirname "$0")/gpu_common.sh"
step cuda_tests 90 $py -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py \
    tests/test_no_sync.py
common=(--device cuda --steps 200 --warmup 20 --rounds 3 --cuda-graph)
step b128_s64 60 $py benchmarks/throughput.py "${common[@]}" --batch-size 128 --image-size 64 \
    --json "$out/throughput_cuda_graph_b128_s64.json"
step b128_s32 60 $py benchmarks/throughput.py "${common[@]}" --batch-size 128 --image-size 32 \
    --json "$out/throughput_cuda_graph_b128_s32.json"
step b128_s64_bf16 60 $py benchmarks/throughput.py "${common[@]}" --batch-size 128 \
    --image-size 64 --precision bf16 --json "$out/throughput_cuda_graph_b128_s64_bf16.json"
step b512_s64_bf16 90 $py benchmarks/throughput.py --device cuda --steps 100 --warmup 20 \
    --rounds 3 --cuda-graph --batch-size 512 --image-size 64 --precision bf16 \
    --json "$out/throughput_cuda_graph_b512_s64_bf16.json"
left=$((total - SECONDS - 30))
step ssl_100_labels $((left + 25)) $py benchmarks/seeds.py --seeds 0 1 2 \
    --seconds "$left" --summary "$out/ssl_100_labels.json" -- \
    --semi-supervised --labels-per-class 10 --dataset mnist --data-dir "$data" --no-download \
    --epochs 300 --device cuda --name ssl100 --out-dir "$out/runs" \
    --plugins no:eval,no:tensorboard,no:progress,no:samples --log-every 600 \
    --set semi_supervised.eval_every=3000 --set cuda_graph=true
