"""Train the in-domain classifiers that gantricks ships, deterministically, and pin them.

    python benchmarks/train_classifiers.py --data-dir ../shared/data --dataset glyphs mnist

For each dataset: trains gantricks' DigitClassifier on CPU exactly as
``gantricks.metrics.classifier.train_classifier`` does (3 epochs, Adam with a one-cycle
schedule, batch 128, random shifts of up to 2 px, seed 0) on ONE thread, so that the
arithmetic does not depend on the machine's core count; measures its accuracy on the test
split; writes ``{dataset}-{version}.pt`` (no timings inside: the same training gives the
same bytes) into the package's weights folder and records it in ``manifest.json`` there:
version name, file, full SHA-256 (the pin checked on every load), test accuracy, dataset,
seed, epochs, threads, torch version, training time and this command.

A shipped version is never silently replaced: if the manifest already holds
``{dataset}-{version}`` with another hash, the script stops and asks for a new version name
(``--version v3``), because scores made with the two networks must not carry the same name.
``--check`` trains into a temporary folder and only compares the hashes with the manifest
(the determinism / reproducibility check; exit status 1 on a difference).

Fashion-MNIST (``--dataset fashion-mnist``) needs ``FashionMNIST/raw`` under ``--data-dir``;
once shipped this way, gantricks uses it instead of training one on first use.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from gantricks.data import load_dataset
from gantricks.metrics import classifier as clf

WEIGHTS = Path(clf.__file__).resolve().parent / "weights"
ABOUT = (
    "The in-domain classifiers gantricks ships, by dataset. Written by "
    "benchmarks/train_classifiers.py; sha256 pins each file and is checked on every load."
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_one(
    dataset: str, data_dir: str, out: Path, version: str, seed: int, epochs: int, threads: int
) -> dict[str, Any]:
    """Train, test and save one classifier; its manifest entry."""
    name = f"{dataset}-{version}"
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model, acc = clf.train_classifier(
        dataset, data_dir, "cpu", epochs=epochs, seed=seed, download=False, progress=False
    )
    seconds = time.perf_counter() - start
    path = out / f"{name}.pt"
    info = {
        "dataset": dataset,
        "name": name,
        "test_accuracy": acc,
        "epochs": epochs,
        "seed": seed,
        "device": "cpu",
        "threads": threads,
        "torch": str(torch.__version__),
    }
    clf.save_classifier(model, path, info)
    test = load_dataset(dataset, data_dir, image_size=clf.SIZE, train=False, download=False)
    return {
        "name": name,
        "file": path.name,
        "sha256": sha256(path),
        "architecture": clf.ARCHITECTURE,
        "dataset": dataset,
        "test_accuracy": acc,
        "test_images": len(test),
        "seed": seed,
        "epochs": epochs,
        "batch_size": 128,
        "device": "cpu",
        "threads": threads,
        "torch": str(torch.__version__),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "train_seconds": round(seconds, 1),
        "bytes": path.stat().st_size,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dataset",
        nargs="+",
        default=["glyphs", "mnist"],
        choices=clf.CLASSIFIER_DATASETS,
        help="datasets to train (default: glyphs mnist)",
    )
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (FashionMNIST/raw)")
    p.add_argument("--version", default="v2", help="version name suffix (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=clf.DEFAULT_EPOCHS)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    p.add_argument("--out", type=Path, default=WEIGHTS, help="default: the package's weights")
    p.add_argument(
        "--check",
        action="store_true",
        help="train into a temporary folder and compare the hashes with the manifest",
    )
    args = p.parse_args(argv)
    command = "python benchmarks/train_classifiers.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    manifest_path = args.out / clf.MANIFEST
    manifest: dict[str, Any] = {"classifiers": {}}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
    manifest["about"] = ABOUT
    shipped = manifest["classifiers"]

    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        # Trained into a scratch folder first: a shipped file is only ever replaced by the
        # same name with the same hash, or by a new version name.
        for dataset in args.dataset:
            entry = train_one(
                dataset,
                args.data_dir,
                Path(tmp),
                args.version,
                args.seed,
                args.epochs,
                args.threads,
            )
            entry["command"] = command
            print(
                f"{entry['name']}: test accuracy {entry['test_accuracy']:.4f} on "
                f"{entry['test_images']} images, {entry['train_seconds']:.1f} s, "
                f"{entry['bytes']} bytes, sha256 {entry['sha256']}",
                flush=True,
            )
            old = shipped.get(dataset)
            same_name = old is not None and old["name"] == entry["name"]
            if args.check:
                if old is None:
                    print(f"  nothing shipped for {dataset} to compare with")
                elif old["sha256"] == entry["sha256"]:
                    print(f"  identical to the shipped {old['name']}")
                else:
                    print(f"  DIFFERS from the shipped {old['name']} (sha256 {old['sha256']})")
                    status = 1
                continue
            if same_name and old["sha256"] != entry["sha256"]:
                print(
                    f"{entry['name']} is already shipped with sha256 {old['sha256']}; this "
                    f"training gave another network. A changed classifier needs a new version "
                    f"name: rerun with --version v{_next(args.version)} (the shipped file is "
                    f"left as it is).",
                    file=sys.stderr,
                )
                return 1
            if same_name and old["sha256"] == entry["sha256"]:
                print(f"  identical to the shipped {old['name']}: manifest left as it is")
                continue
            if old is not None and not same_name:
                print(
                    f"  replaces {old['name']} as the shipped {dataset} classifier "
                    f"(remove {old['file']} from the weights folder: `git rm`)"
                )
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / entry["file"], args.out / entry["file"])
            shipped[dataset] = entry
            manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            print(f"  wrote {args.out / entry['file']} and {manifest_path}")
    return status


def _next(version: str) -> str:
    digits = version.lstrip("v")
    return str(int(digits) + 1) if digits.isdigit() else "2"


if __name__ == "__main__":
    sys.exit(main())
