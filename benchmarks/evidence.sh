#!/usr/bin/env bash
# Issue 20's measurements, in the order they were run, on a 2-core CPU (benchmarks/RESULTS.md,
# "Evidence: the paper's claims in the paper's set-ups"). Every bench resumes: run the script
# again after an interruption. Reports are copied to benchmarks/results/<name>/.
#
#   bash benchmarks/evidence.sh [DATA_DIR] [OUT]     (defaults: ../shared/data, runs/bench)
#
# --threads 1: the machine was shared with other jobs; one torch thread per run suffered
# far less from that than two.
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/bench}
G=(gantricks bench --data-dir "$DATA" --no-download --device cpu)
keep() {  # copy a bench's reports into the repository
    mkdir -p "benchmarks/results/$1"
    cp "$OUT/$1"/results.{md,csv,json,png} "benchmarks/results/$1/"
}

# 1. Stacked MNIST: where does plain DCGAN collapse? (seed 0, plain dcgan, narrower D)
"${G[@]}" --combos none --dataset stacked-mnist --seeds 1 --steps 2000 --batch-size 64 \
    --metrics classifier --num-samples 26000 --eval-every 500 --set ndf=8 \
    --out "$OUT/stacked_probe_ndf8" && keep stacked_probe_ndf8
"${G[@]}" --combos none --dataset stacked-mnist --seeds 1 --steps 2000 --batch-size 64 \
    --metrics classifier --num-samples 26000 --eval-every 1000 --set ndf=4 \
    --out "$OUT/stacked_probe_ndf4" && keep stacked_probe_ndf4
"${G[@]}" --combo-file benchmarks/configs/stacked_probe.toml --dataset stacked-mnist \
    --seeds 1 --steps 2000 --batch-size 64 --metrics classifier --num-samples 26000 \
    --eval-every 1000 --out "$OUT/stacked_probe2" && keep stacked_probe2

# 2. Defaults from a small grid (MNIST, dcgan, seeds 0-1; the rule is in the config file)
"${G[@]}" --combo-file benchmarks/configs/defaults_grid.toml --dataset mnist --seeds 2 \
    --steps 600 --batch-size 64 --metrics classifier,classifier_fid --num-samples 5000 \
    --eval-every 600 --threads 1 --out "$OUT/defaults_grid" && keep defaults_grid

# 3. Stacked MNIST with D at 1/16 of G's width, 3 seeds
"${G[@]}" --combo-file benchmarks/configs/stacked_mnist_narrow_d.toml --dataset stacked-mnist \
    --seeds 3 --steps 2000 --batch-size 64 --set ndf=4 --metrics classifier \
    --num-samples 26000 --eval-every 1000 --threads 1 --out "$OUT/stacked_narrow_d" \
    && keep stacked_narrow_d

# 4. The MNIST trick grid with the measured defaults, 3 seeds
"${G[@]}" --combo-file benchmarks/configs/mnist_grid_v2.toml --dataset mnist --seeds 3 \
    --steps 600 --batch-size 64 --metrics classifier,classifier_fid --num-samples 5000 \
    --eval-every 600 --threads 1 --out "$OUT/mnist_grid_v2" && keep mnist_grid_v2

# 5. Paper section 6.1: the authors' MNIST networks with 100 labels, minibatch against
#    feature matching, and plain; 3 seeds
"${G[@]}" --combo-file benchmarks/configs/paper_mnist_samples.toml --dataset mnist --seeds 3 \
    --steps 3000 --batch-size 100 --metrics classifier,classifier_fid --num-samples 10000 \
    --eval-every 1000 --threads 1 --out "$OUT/paper_mnist" && keep paper_mnist
