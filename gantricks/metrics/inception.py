"""The Inception network of the Inception Score paper protocol, via torch-fidelity.

Salimans et al. (2016) computed the Inception Score with the 2015-12-05 TensorFlow
Inception graph; torch-fidelity ships a bit-faithful PyTorch port of it (including
TensorFlow 1.x's bilinear resize to 299×299) whose last layer has 1008 logits, of which the
unbiased logits feed the softmax. Its 2048-d pool features serve FID and KID.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from gantricks.errors import GantricksError

NETWORK = "inception-v3-compat (2015-12-05 TF graph, torch-fidelity port)"
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FEATURES = ("2048", "logits_unbiased")


def _url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def default_weights_location() -> Path:
    """Where downloaded weights are cached (torch hub's checkpoint folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def resolve_weights(path: str | Path | None = None) -> Path:
    """The weights file: ``path`` if given, else the cached download (downloading it once)."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise GantricksError(f"--inception-weights {str(p)!r} does not exist")
        return p
    cached = default_weights_location()
    if cached.is_file():
        return cached
    tmp: str | None = None
    try:  # an unwritable cache folder is the same problem as no network: say what to do
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".part")
        os.close(fd)
        torch.hub.download_url_to_file(_url(), tmp, progress=True)
        os.replace(tmp, cached)
    except Exception as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise GantricksError(
            f"the Inception Score and FID need the 2015-12-05 Inception weights ({WEIGHTS_FILE}, "
            f"about 91 MB), which could not be downloaded from {_url()} to {str(cached)!r} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Download that "
            "file where the network allows and pass its path: --inception-weights PATH to "
            "`gantricks eval` and `gantricks bench`, --set eval.inception_weights=PATH to "
            f"`gantricks train`; or place it at {str(cached)!r}."
        ) from None
    return cached


def save_random_weights(path: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised network of the real architecture, in the real file's
    format: the same compute and shapes, a meaningless score. For offline tests and speed
    measurements only."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    saved = fe.load_state_dict_from_url, fe.FeatureExtractorInceptionV3.load_state_dict
    fe.load_state_dict_from_url = lambda *a, **k: None  # skip the download in __init__
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, sd: None
    try:
        torch.manual_seed(seed)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        fe.load_state_dict_from_url, fe.FeatureExtractorInceptionV3.load_state_dict = saved
    torch.save(net.state_dict(), path)
    return Path(path)


def file_hash(path: str | Path, length: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


class Inception:
    """The paper-protocol Inception network: uint8 images in, pool features and logits out."""

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu"):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = resolve_weights(weights)
        self.weights_path = path
        self.weights_hash = file_hash(path)
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", list(FEATURES), feature_extractor_weights_path=str(path)
            )
        except Exception as e:
            raise GantricksError(
                f"{str(path)!r} is not a usable Inception weights file ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); expected torch-fidelity's "
                f"{WEIGHTS_FILE}"
            ) from None
        self.device = torch.device(device)
        self.net.to(self.device).eval()

    def describe(self) -> dict[str, str]:
        return {
            "network": NETWORK,
            "weights": self.weights_path.name,
            "weights_sha256": self.weights_hash,
        }

    @torch.no_grad()
    def features(self, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run uint8 (N, C, H, W) batches; grayscale is repeated to RGB. Returns CPU float64
        tensors: ``"2048"`` (pool features) and ``"logits_unbiased"`` (N, 1008)."""
        out: dict[str, list[torch.Tensor]] = {k: [] for k in FEATURES}
        for images in batches:
            if images.dtype != torch.uint8:
                raise TypeError("Inception expects uint8 images, quantised as a PNG stores them")
            if images.shape[1] == 1:
                images = images.expand(-1, 3, -1, -1)
            feats = self.net(images.to(self.device, non_blocking=True))
            for name, value in zip(FEATURES, feats, strict=True):
                out[name].append(value)  # stays on the device: one copy to the host at the end
        return {k: torch.cat(v).double().cpu() for k, v in out.items()}
