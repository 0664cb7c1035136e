"""DCGAN features + linear SVM: the features against a manual forward, the SVM, the command."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from gantricks import GantricksError
from gantricks.cli import main
from gantricks.data import to_float
from gantricks.features import conv_features, linear_svm
from gantricks.models import build_models
from gantricks.run import prepare

from .conftest import QUIET


def test_conv_features_are_each_block_max_pooled_to_4x4():
    torch.manual_seed(0)
    d = build_models(nz=8, channels=1, image_size=64, ngf=4, ndf=4).discriminator
    images = torch.randint(0, 256, (6, 1, 64, 64), dtype=torch.uint8)
    feats = conv_features(d, images, batch_size=6)
    # By hand: run the trunk layer by layer, pool each block's LeakyReLU output.
    x, pooled = to_float(images), []
    with torch.no_grad():
        for layer in d.features:
            x = layer(x)
            if isinstance(layer, torch.nn.LeakyReLU):
                pooled.append(F.adaptive_max_pool2d(x, 4).flatten(1))
    expected = torch.cat(pooled, 1)
    assert feats.shape == (6, 16 * (4 + 8 + 16 + 32))  # blocks at 32, 16, 8, 4 px
    assert torch.allclose(feats, expected, atol=1e-5)


def test_conv_features_do_not_change_the_discriminator():
    d = build_models(nz=8, channels=1, image_size=28, ngf=4, ndf=4).discriminator
    before = {k: v.clone() for k, v in d.state_dict().items()}
    conv_features(d, torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8))
    assert all(torch.equal(v, before[k]) for k, v in d.state_dict().items())


def test_linear_svm_separates_separable_classes():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 20, generator=gen) * 5

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(3).repeat(n)
        return centres[y] + torch.randn(len(y), 20, generator=gen) * 0.3, y

    (xa, ya), (xb, yb) = draw(10), draw(50)
    result = linear_svm(xa, ya, xb, yb, cs=(0.01, 1.0))
    assert result.test_accuracy == 1.0
    assert result.C in (0.01, 1.0) and set(result.cv_scores) == {0.01, 1.0}
    assert (result.train_examples, result.test_examples, result.feature_dim) == (30, 150, 20)
    assert linear_svm(xa, ya, xb, yb, cs=(1.0,)).cv_accuracy is None
    with pytest.raises(GantricksError, match="at least 2 labelled examples per class"):
        linear_svm(xa[:3], ya[:3], xb, yb, cs=(0.1, 1.0))


def test_features_command(tiny, tmp_path, capsys):
    trainer, _ = prepare({**tiny, "steps": 4}, plugins=QUIET)
    trainer.fit()
    out = tmp_path / "f.json"
    args = ["features", str(trainer.run_dir), "--labels-per-class", "5", "--device", "cpu"]
    assert main([*args, "--baselines", "--C", "0.1,1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["labelled_examples"] == 50 and result["C_grid"] == [0.1, 1.0]
    assert set(result["results"]) == {"discriminator", "untrained discriminator", "pixels"}
    for r in result["results"].values():
        assert r["test_examples"] == 10_000 and 0.1 < r["test_accuracy"] <= 1.0
    assert "test acc" in capsys.readouterr().out
    assert main([*args, "--C", "0,1"]) == 2
    assert "--C '0,1': give one or more positive numbers" in capsys.readouterr().err
    assert main([*args[:2], "--dataset", "folder"]) == 2
    assert "needs a labelled dataset; 'folder'" in capsys.readouterr().err
