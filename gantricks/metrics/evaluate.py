"""Score a generator: Inception Score, FID, KID, in-domain classifier scores and the
in-domain FID (``classifier_fid``: the Fréchet distance in the in-domain classifier's
penultimate features, never to be confused with the Inception FID).

Samples are drawn from seeded latent vectors, quantised to uint8 exactly as a saved PNG
would store them, and streamed batch by batch to every requested metric, so 50,000
samples never sit in memory as floats. Reference statistics of the training set (for FID
and KID) are computed once per dataset, image size and network, and cached.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from gantricks.checkpoint import atomic_torch_save
from gantricks.data import to_uint8
from gantricks.errors import GantricksError
from gantricks.metrics import registry, scores
from gantricks.sampling import draw_latent, generate, isolated_rng

METRICS = tuple(registry.METRICS)
INCEPTION_METRICS = {n for n, m in registry.METRICS.items() if m.network == "inception"}
CLASSIFIER_DATASETS = ("glyphs", "mnist", "fashion-mnist", "stacked-mnist")
#: What a cached reference-statistics file must hold to be used.
_REFERENCE_KEYS = {"mu", "sigma", "kid_features", "num_images"}
_CLASSIFIER_REFERENCE_KEYS = {"mu", "sigma", "num_images"}
#: Metrics that read the in-domain classifier.
CLASSIFIER_METRICS = {n for n, m in registry.METRICS.items() if m.network == "classifier"}


@dataclass
class EvalSettings:
    """How to evaluate; the defaults are the Inception Score paper protocol."""

    metrics: list[str] = field(default_factory=lambda: ["is"])
    num_samples: int = 50_000
    splits: int = 10
    batch_size: int = 500
    seed: int = 0
    inception_weights: str | None = None
    reference_samples: int = 50_000
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    progress: bool = True

    def check(self) -> None:
        bad = [m for m in self.metrics if m not in METRICS]
        if bad or not self.metrics:
            raise GantricksError(
                f"unknown metric(s) {', '.join(bad) or '(none given)'}; allowed: "
                f"{', '.join(METRICS)}"
            )
        if self.num_samples < self.splits:
            raise GantricksError(
                f"--num-samples {self.num_samples} must be at least the number of splits "
                f"({self.splits})"
            )


def sample_batches(
    generator: nn.Module,
    nz: int,
    n: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    latent: str = "normal",
) -> Iterator[tuple[int, torch.Tensor]]:
    """(batch index, uint8 samples) from latent vectors (distribution ``latent``) drawn on
    the CPU with ``seed``.

    With ``world_size`` > 1 only batches ``rank, rank + world_size, ...`` are generated;
    every rank draws every z, so the ranks' shards together are exactly the single-process
    samples (batch norm uses each batch's own statistics).
    """
    gen = torch.Generator().manual_seed(seed)
    done = index = 0
    while done < n:
        b = min(batch_size, n - done)
        z = draw_latent(b, nz, latent, generator=gen)
        if index % world_size == rank:
            yield index, to_uint8(generate(generator, z.to(device), batch_size=b))
        done += b
        index += 1


class Evaluator:
    """Holds the networks and reference statistics for one dataset; scores generators.

    Make one per run and call :meth:`evaluate` as often as needed (the ``eval`` plugin does
    this during training). Neither touches torch's global random state (the networks'
    random initialisation before their weights load, any randomness in the generator):
    training between evaluations draws what it would have drawn without them.
    """

    def __init__(
        self,
        settings: EvalSettings,
        dataset: str,
        data_dir: str | Path,
        image_size: int,
        device: torch.device | str = "cpu",
        download: bool = True,
    ) -> None:
        settings.check()
        self.settings = settings
        self.dataset = dataset
        self.data_dir = Path(data_dir)
        self.image_size = image_size
        self.device = torch.device(device)
        self.download = download
        self.inception = None
        self.classifier: nn.Module | None = None
        self.classifier_info: dict[str, Any] = {}
        wanted = set(settings.metrics)
        if "classifier_fid" in wanted and dataset == "stacked-mnist":
            raise GantricksError(
                "classifier_fid is not defined for stacked-mnist: the MNIST classifier reads "
                "one channel at a time and gantricks computes no per-channel Fréchet distance; "
                "use the classifier metric (modes covered, KL to uniform)"
            )
        with isolated_rng(self.device):  # the networks are made randomly, then loaded
            if wanted & CLASSIFIER_METRICS:
                if dataset not in CLASSIFIER_DATASETS:
                    names = " and ".join(sorted(wanted & CLASSIFIER_METRICS))
                    raise GantricksError(
                        f"the {names} metric exists for {', '.join(CLASSIFIER_DATASETS)}; this "
                        f"model was trained on {dataset!r}: use is, fid or kid"
                    )
                from gantricks.metrics.classifier import load_classifier

                base = "mnist" if dataset == "stacked-mnist" else dataset
                self.classifier, self.classifier_info = load_classifier(
                    base, self.data_dir, device=self.device, download=download
                )
            if wanted & INCEPTION_METRICS:
                from gantricks.metrics.inception import Inception

                self.inception = Inception(settings.inception_weights, self.device)
        self.reference: dict[str, Any] | None = None
        self.classifier_reference: dict[str, Any] | None = None

    # ------------------------------------------------------------ reference statistics
    def reference_statistics(self) -> dict[str, Any]:
        """Inception pool statistics (and a feature subset for KID) of the training set."""
        if self.reference is not None:
            return self.reference
        assert self.inception is not None
        n = self.settings.reference_samples
        key = f"{self.dataset}-{self.image_size}px-n{n}-inception{self.inception.weights_hash}"
        if self.dataset == "folder":  # its images change with the folder, the others do not
            key += f"-files{folder_fingerprint(self.data_dir)}"
        path = _stats_path(self.data_dir, key + ".pt")
        cached = _load_cached(path, _REFERENCE_KEYS, "reference statistics")
        if cached is not None:
            self.reference = cached
            return cached
        images = self._training_images(n)
        batches = images.split(self.settings.batch_size)
        if self.settings.progress:
            batches = tqdm(batches, desc=f"Inception features of {self.dataset} (once)")
        feats = self.inception.features(batches)["2048"]
        mu, sigma = scores.feature_statistics(feats)
        keep = torch.randperm(feats.shape[0], generator=torch.Generator().manual_seed(0))
        ref = {
            "mu": mu,
            "sigma": sigma,
            "kid_features": feats[keep[:10_000]].float(),
            "num_images": int(feats.shape[0]),
            "dataset": self.dataset,
            "image_size": self.image_size,
        }
        atomic_torch_save(ref, path)
        ref["path"] = str(path)
        self.reference = ref
        return ref

    def classifier_reference_statistics(self) -> dict[str, Any]:
        """Mean and covariance of the in-domain classifier's penultimate features of the
        training set (up to ``reference_samples`` images), for ``classifier_fid``; computed
        once per dataset, image size, image count and classifier (its hash in the file
        name), and cached beside the Inception statistics."""
        if self.classifier_reference is not None:
            return self.classifier_reference
        assert self.classifier is not None
        from gantricks.metrics.digit_classifier import predict

        info, n = self.classifier_info, self.settings.reference_samples
        key = (
            f"{self.dataset}-{self.image_size}px-n{n}-classifier-{info.get('name')}-"
            f"{info.get('sha256')}.pt"
        )
        path = _stats_path(self.data_dir, key)
        cached = _load_cached(path, _CLASSIFIER_REFERENCE_KEYS, "classifier reference statistics")
        if cached is not None:
            self.classifier_reference = cached
            return cached
        images = self._training_images(n)
        _, feats = predict(
            self.classifier, images, self.device, self.settings.batch_size, features=True
        )
        assert feats is not None
        mu, sigma = scores.feature_statistics(feats)
        ref = {
            "mu": mu,
            "sigma": sigma,
            "num_images": int(feats.shape[0]),
            "dataset": self.dataset,
            "image_size": self.image_size,
        }
        atomic_torch_save(ref, path)
        ref["path"] = str(path)
        self.classifier_reference = ref
        return ref

    def _training_images(self, n: int) -> torch.Tensor:
        """The first ``n`` training images (all of them if fewer): the reference set."""
        from gantricks.data import load_dataset

        data = load_dataset(
            self.dataset, self.data_dir, self.image_size, train=True, download=self.download
        )
        return data.images[: min(n, len(data))]

    # --------------------------------------------------------------------- evaluation
    def _network_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the metrics need from one batch of samples, as CPU tensors."""
        out: dict[str, torch.Tensor] = {}
        if self.inception is not None:
            f = self.inception.features([images])
            out["logits"], out["pool"] = f["logits_unbiased"], f["2048"]
        if self.classifier is not None:
            from gantricks.metrics.digit_classifier import predict

            if self.dataset == "stacked-mnist":
                for c in range(3):
                    out[f"probs{c}"], _ = predict(
                        self.classifier, images[:, c : c + 1], self.device
                    )
            else:
                wants_features = "classifier_fid" in self.settings.metrics
                probs, feats = predict(
                    self.classifier, images, self.device, features=wants_features
                )
                out["probs"] = probs
                if feats is not None:
                    out["classifier_features"] = feats
        return out

    @torch.no_grad()
    def evaluate(
        self,
        generator: nn.Module,
        nz: int,
        rank: int = 0,
        world_size: int = 1,
        latent: str = "normal",
    ) -> dict[str, Any] | None:
        """Score ``generator``; return the full result (metrics, protocol, networks).

        In a multi-process run every rank calls this with its ``rank``: each samples and
        runs the networks on its share of the batches, rank 0 gathers the outputs and
        computes the scores (the same as one process would), the others return ``None``.
        torch's global random state is left as it was found.
        """
        with isolated_rng(self.device):
            return self._evaluate(generator, nz, rank, world_size, latent)

    def _evaluate(
        self, generator: nn.Module, nz: int, rank: int, world_size: int, latent: str
    ) -> dict[str, Any] | None:
        s = self.settings
        if rank == 0 and ("fid" in s.metrics or "kid" in s.metrics):
            # Computed once, before the clock starts: not the samples' time.
            self.reference_statistics()
        if rank == 0 and "classifier_fid" in s.metrics:
            self.classifier_reference_statistics()
        start = time.perf_counter()
        batches: Iterator[tuple[int, torch.Tensor]] = sample_batches(
            generator,
            nz,
            s.num_samples,
            s.batch_size,
            s.seed,
            self.device,
            rank,
            world_size,
            latent,
        )
        if s.progress and rank == 0:
            total = len(range(0, -(-s.num_samples // s.batch_size), world_size))
            batches = tqdm(batches, total=total, desc="evaluating", unit="batch", leave=False)
        local = [(index, self._network_outputs(images)) for index, images in batches]
        if world_size > 1:
            from gantricks.distributed import gather_to_main

            gathered = gather_to_main(local)
            if gathered is None:
                return None
            local = sorted((item for part in gathered for item in part), key=lambda t: t[0])
        outputs = {
            key: torch.cat([out[key] for _, out in local]) for key in (local[0][1] if local else {})
        }
        metrics = {name: registry.METRICS[name].compute(outputs, self) for name in s.metrics}
        elapsed = time.perf_counter() - start
        return {
            "dataset": self.dataset,
            "image_size": self.image_size,
            "settings": asdict(s),
            "metrics": metrics,
            "networks": {
                **({"inception": self.inception.describe()} if self.inception else {}),
                **({"classifier": self.classifier_info} if self.classifier is not None else {}),
            },
            "reference": (
                {
                    k: v
                    for k, v in self.reference.items()
                    if k in ("path", "num_images", "dataset", "image_size")
                }
                if self.reference
                else None
            ),
            "seconds": elapsed,
            "samples_per_s": s.num_samples / max(elapsed, 1e-9),
        }


def _load_cached(path: Path, keys: set[str], what: str) -> dict[str, Any] | None:
    """A cached statistics file with all of ``keys``, or None (absent, or unreadable: a
    cache is computed again, with a warning)."""
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, weights_only=True)
        missing = keys - set(cached)
        if missing:
            raise KeyError(f"no {', '.join(sorted(missing))}")
    except Exception as e:
        warnings.warn(
            f"{what} {str(path)!r} are unreadable ({type(e).__name__}); computing them again",
            stacklevel=3,
        )
        return None
    return {**cached, "path": str(path)}


def folder_fingerprint(root: Path) -> str:
    """A short hash of an image folder's listing (paths, sizes, modification times): an
    image added, removed or replaced gives another reference-statistics file."""
    from gantricks.datasets import IMAGE_EXTS

    h = hashlib.sha256()
    for p in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS):
        st = p.stat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def _stats_path(data_dir: Path, key: str) -> Path:
    """Next to the data when that folder is writable, else in the user cache under the
    data folder's own name (two read-only folders of one dataset kind must not share)."""
    local = data_dir / ".gantricks-stats"
    try:
        local.mkdir(parents=True, exist_ok=True)
        probe = local / ".write-test"
        probe.touch()
        probe.unlink()
        return local / key
    except OSError:
        from gantricks.metrics.classifier import cache_dir

        where = hashlib.sha256(str(data_dir.expanduser().resolve()).encode()).hexdigest()[:12]
        folder = cache_dir() / "stats" / where
        folder.mkdir(parents=True, exist_ok=True)
        return folder / key
