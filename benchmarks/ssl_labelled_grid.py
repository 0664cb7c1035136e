"""The labelled examples of some classes for several seeds, one row per (digit, seed), as
``--semi-supervised`` draws them: a look at why one seed's run gets a class wrong.

    python benchmarks/ssl_labelled_grid.py --data-dir DATA --digits 1 2 7 --seeds 0 1 2 \
        --out F.png
"""

from __future__ import annotations

import argparse

import torch
from torchvision.utils import save_image

from gantricks.data import balanced_subset, load_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--digits", type=int, nargs="+", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--labels-per-class", type=int, default=10)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    data = load_dataset("mnist", args.data_dir, 28, train=True, download=False)
    subsets = {s: balanced_subset(data.labels, args.labels_per_class, 10, s) for s in args.seeds}
    rows = []
    for digit in args.digits:
        for idx in subsets.values():  # the plugin's draw (label_seed = the run's seed)
            rows.append(data.images[idx[data.labels[idx] == digit]])
    grid = torch.cat(rows).float() / 255
    save_image(grid, args.out, nrow=args.labels_per_class, padding=2, pad_value=0.5)
    print(f"wrote {args.out}: for each of digits {args.digits}, one row per seed {args.seeds}")


if __name__ == "__main__":
    main()
