"""Latent-space tools: interpolation formulas, arithmetic, nearest neighbours, the commands."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from gantricks import GantricksError
from gantricks.cli import main
from gantricks.data import to_float
from gantricks.latent import (
    CONTEXT,
    Arithmetic,
    arithmetic_z,
    lerp,
    nearest,
    nearest_rows,
    parse_expression,
    render,
    slerp,
)
from gantricks.run import load_models, prepare
from gantricks.sampling import fixed_noise

from .conftest import QUIET


def test_lerp_and_slerp_formulas():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(lerp(a, b, t), torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]))
    s = slerp(a, b, t)
    assert torch.allclose(s[0], a) and torch.allclose(s[2], b)
    # On the unit circle the spherical path keeps norm 1 (the linear one drops to 0.707).
    assert torch.allclose(s.norm(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose(s[1], torch.tensor([2**-0.5, 2**-0.5]), atol=1e-6)
    # Parallel end points: slerp falls back to lerp instead of dividing by sin 0.
    assert torch.allclose(slerp(a, 2 * a, t), lerp(a, 2 * a, t))


def test_parse_expression():
    names = {"smiling_woman", "neutral_woman", "neutral_man"}
    assert parse_expression("smiling_woman - neutral_woman + neutral_man", names) == [
        (1.0, "smiling_woman"),
        (-1.0, "neutral_woman"),
        (1.0, "neutral_man"),
    ]
    assert parse_expression("-neutral_man", names) == [(-1.0, "neutral_man")]
    with pytest.raises(GantricksError, match="'cat', which is not a group; allowed: neutral_man"):
        parse_expression("smiling_woman + cat", names)
    with pytest.raises(GantricksError, match="missing"):
        parse_expression("smiling_woman neutral_man", names)
    with pytest.raises(GantricksError, match="incomplete"):
        parse_expression("smiling_woman -", names)


def _request(tmp_path, body: str) -> Arithmetic:
    path = tmp_path / "a.toml"
    path.write_text(body)
    return Arithmetic.from_toml(path)


def test_arithmetic_averages_and_combines_z(tmp_path):
    req = _request(
        tmp_path,
        'seed = 3\nn = 16\nexpression = "a - b + c"\n'
        "[groups]\na = [0, 1]\nb = [2]\nc = [5, 6, 7]\n",
    )
    exemplars, means, results = arithmetic_z(req, nz=4, variations=3, noise=0.25)
    z = fixed_noise(16, 4, 3)
    expected = z[[0, 1]].mean(0) - z[2] + z[[5, 6, 7]].mean(0)
    assert torch.allclose(results[0], expected)
    assert torch.equal(exemplars, z[[0, 1, 2, 5, 6, 7]])
    assert torch.allclose(means[1], z[2])
    jitter = results[1:] - expected
    assert jitter.abs().max() <= 0.25 and jitter.abs().max() > 0


def test_arithmetic_file_errors(tmp_path):
    with pytest.raises(GantricksError, match="does not exist"):
        Arithmetic.from_toml(tmp_path / "none.toml")
    with pytest.raises(GantricksError, match="lacks expression"):
        _request(tmp_path, "[groups]\na = [1]\n")
    with pytest.raises(GantricksError, match=r"group 'a' has indices \[64\]; allowed: .*0\.\.63"):
        _request(tmp_path, 'expression = "a"\n[groups]\na = [1, 64]\n')


def test_nearest_matches_brute_force_across_chunks():
    gen = torch.Generator().manual_seed(0)
    queries, pool = torch.randn(5, 3, generator=gen), torch.randn(50, 3, generator=gen)
    brute = torch.cdist(queries, pool).argsort(dim=1)[:, :4]
    assert torch.equal(nearest(queries, pool, k=4, chunk=7), brute)
    with pytest.raises(GantricksError, match=r"--k 51: allowed 1\.\.50"):
        nearest(queries, pool, k=51)


def test_feature_mode_keeps_batch_norm_and_turns_noise_off():
    from gantricks.sampling import feature_mode

    net = torch.nn.Sequential(torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(16, 4) * 3 + 2
    with feature_mode(net):
        a, b = net(x), net(x)
    assert torch.equal(a, b)  # no dropout
    assert torch.allclose(a.mean(0), torch.zeros(4), atol=1e-5)  # batch statistics
    assert net.training and net[1].training  # modes restored
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.fixture
def checkpoint_path(tiny):
    trainer, _ = prepare({**tiny, "steps": 4}, plugins=QUIET)
    trainer.fit()
    return trainer.run_dir / "checkpoints" / "last.pt"


def test_render_uses_the_context_batch_and_leaves_no_trace(checkpoint_path):
    models, config, _ = load_models(checkpoint_path, "cpu")
    g = models.generator
    before = {k: v.clone() for k, v in g.state_dict().items()}
    z = fixed_noise(3, config.nz, 9)
    out = render(g, z)
    context = fixed_noise(CONTEXT, config.nz, 12345)
    with torch.no_grad():
        expected = g(torch.cat([context, z]))[CONTEXT:]
    for k, v in g.state_dict().items():  # restore what the reference forward changed
        v.copy_(before[k])
    assert torch.allclose(out, expected, atol=1e-6)
    render(g, z)
    assert all(torch.equal(v, before[k]) for k, v in g.state_dict().items())


def test_a_training_image_is_its_own_nearest_neighbour(checkpoint_path):
    from gantricks.data import load_dataset

    models, _, _ = load_models(checkpoint_path, "cpu")
    train = load_dataset("glyphs").images[:300]
    samples = to_float(train[[7, 123]])
    rows, pix, _ = nearest_rows(samples, train, models.discriminator, k=3)
    assert pix[:, 0].tolist() == [7, 123]
    assert rows.shape == (2 * 7, 1, 28, 28)
    assert torch.equal(rows[1], samples[0])  # first pixel neighbour of the first sample


def test_latent_commands_write_pngs(checkpoint_path, tmp_path, capsys):
    out = tmp_path / "i.png"
    args = ["--device", "cpu", "--out", str(out)]
    assert main(["interpolate", str(checkpoint_path), "--pairs", "2", "--steps", "5", *args]) == 0
    # 4 rows (2 pairs × linear, spherical) of 5 glyphs of 28 px with 2 px padding
    assert Image.open(out).size == (5 * 30 + 2, 4 * 30 + 2)

    toml = tmp_path / "a.toml"
    toml.write_text('expression = "a - b + c"\n[groups]\na = [1, 2]\nb = [3]\nc = [4, 5, 6]\n')
    out = tmp_path / "a.png"
    args = ["--device", "cpu", "--out", str(out), "--indices", str(toml), "--variations", "4"]
    assert main(["arithmetic", str(checkpoint_path), *args]) == 0
    assert Image.open(out).size == (4 * 30 + 2, 4 * 30 + 2)  # width max(3 + 1, 4); 3 terms + 1

    out = tmp_path / "n.png"
    args = ["--device", "cpu", "--out", str(out), "--n", "2", "--k", "2", "--max-train", "500"]
    assert main(["nearest", str(checkpoint_path), *args]) == 0
    assert Image.open(out).size == (5 * 30 + 2, 2 * 30 + 2)
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["train_images_searched"] == 500
    assert len(info["pixel_neighbours"]) == 2 and len(info["feature_neighbours"][0]) == 2

    assert main(["interpolate", str(checkpoint_path), "--steps", "0"]) == 2
    assert "--steps must be a positive number, got 0" in capsys.readouterr().err
