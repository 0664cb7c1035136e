#!/usr/bin/env bash
# Continue one semi-supervised run (for example one started on a CPU) on a CUDA GPU with the
# CUDA graph, to the end of its configured epochs or for at most LIMIT seconds, whichever
# comes first (then stopped with SIGINT: checkpoint, then the test error), and copy its
# results to OUTDIR. Run from the repository root with gantricks installed:
#   DATA=data bash benchmarks/gpu_ssl_continue.sh RUN_DIR OUTDIR LIMIT
# Checkpoints go down to one every 6000 steps: the run is short and the disk is not free.
set -u
run=$1 out=$2 limit=$3
py=${PYTHON:-python3}
mkdir -p "$out"
source "$(dirname "$0")/gpu_common.sh"
start=$SECONDS
timeout -s INT -k 60 "$limit" $py -m gantricks train --resume "$run" --device cuda \
    --data-dir "${DATA:-data}" --no-download --set cuda_graph=true \
    --set checkpoint.every=6000 2>&1 | tee "$out/train.log"
echo "== exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$out/train.log"
cp "$run/ssl.json" "$run/metrics.jsonl" "$run/config.json" "$out/"
$py - "$run/ssl.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("step", r["step"], "test errors", r["test_errors"], "current D", r["test_errors_current_d"])
for h in r["history"][::10]:
    print(h["step"], h["test_errors"], h["current_d"])
PY
