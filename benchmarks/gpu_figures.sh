#!/usr/bin/env bash
# Every GPU figure in benchmarks/RESULTS.md, in one go, on a machine with one CUDA GPU.
# Run from the repository root with gantricks installed: bash benchmarks/gpu_figures.sh OUTDIR
# Each step has its own time limit (LIMIT seconds, default 240) so one slow step cannot take
# the others with it; the log says which step ended how.
set -u
out=${1:-gpu_figures}
py=${PYTHON:-python3}
mkdir -p "$out"
step() {
    local name=$1
    shift
    echo "== $name: $*"
    local start=$SECONDS
    timeout "${LIMIT:-240}" "$@"
    echo "== $name: exit $? after $((SECONDS - start)) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
common=(--device cuda --steps 200 --warmup 20 --rounds 3)
step b128_s32 $py benchmarks/throughput.py "${common[@]}" --batch-size 128 --image-size 32 \
    --tricks --json "$out/throughput_cuda_b128_s32.json"
step b128_s64 $py benchmarks/throughput.py "${common[@]}" --batch-size 128 --image-size 64 \
    --json "$out/throughput_cuda_b128_s64.json"
step b512_s64 $py benchmarks/throughput.py "${common[@]}" --batch-size 512 --image-size 64 \
    --json "$out/throughput_cuda_b512_s64.json"
step b128_s64_bf16 $py benchmarks/throughput.py "${common[@]}" --batch-size 128 --image-size 64 \
    --precision bf16 --json "$out/throughput_cuda_b128_s64_bf16.json"
step b512_s64_bf16 $py benchmarks/throughput.py "${common[@]}" --batch-size 512 --image-size 64 \
    --precision bf16 --json "$out/throughput_cuda_b512_s64_bf16.json"
step b512_s64_bf16_compile $py benchmarks/throughput.py "${common[@]}" --batch-size 512 \
    --image-size 64 --precision bf16 --compile --json "$out/throughput_cuda_b512_s64_bf16_compile.json"
step eval_50k $py benchmarks/eval_throughput.py --device cuda --num-samples 50000 --batch-size 500
step no_sync $py -m pytest -q -p no:cacheprovider tests/test_no_sync.py
step default_train $py -m gantricks train --device cuda --out-dir "$out/runs"
