"""Labels (the K+1 GAN): the losses against their formulas, the paper's MNIST networks,
semi-supervised runs."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from gantricks import GantricksError, checkpoint, hookimpl
from gantricks.cli import build_parser, train_options, train_plugins
from gantricks.data import balanced_subset, to_float
from gantricks.models.discriminator import gan_logit
from gantricks.models.layers import GaussianNoise, ShiftOnlyBatchNorm, WNLinear
from gantricks.models.mlp import Generator as MLPGenerator
from gantricks.run import prepare
from gantricks_plugins.labels import Labels, supervised_loss

from .conftest import QUIET


def test_unsupervised_loss_is_the_k_plus_one_formula():
    # D(x) = Z / (Z + 1), Z = Σ exp l_k; BCE on logsumexp(l) must give −log D and −log(1 − D).
    logits = torch.tensor([[0.3, -1.2, 2.0], [-4.0, -3.0, -5.0]], dtype=torch.float64)
    z = logits.exp().sum(1, keepdim=True)
    d = z / (z + 1)
    logit = gan_logit(logits).double()
    real = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit), reduction="none")
    fake = F.binary_cross_entropy_with_logits(logit, torch.zeros_like(logit), reduction="none")
    assert torch.allclose(real, -d.log(), atol=1e-6)
    assert torch.allclose(fake, -(1 - d).log(), atol=1e-6)
    # Large logits overflow exp() but not the logsumexp form.
    big = gan_logit(torch.tensor([[1000.0, 999.0]]))
    assert torch.isfinite(big).all()
    assert big.item() == pytest.approx(1000 + torch.log1p(torch.exp(torch.tensor(-1.0))).item())


def test_supervised_loss_is_minus_l_y_plus_logsumexp():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = torch.tensor([1, 0])
    by_hand = (-logits[[0, 1], y] + torch.logsumexp(logits, 1)).mean()
    assert supervised_loss(logits, y).item() == pytest.approx(by_hand.item(), abs=1e-6)


def test_balanced_subset_is_seeded_and_balanced():
    shuffle = torch.randperm(500, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(10).repeat(50)[shuffle]
    a = balanced_subset(labels, 3, 10, seed=5)
    assert len(a) == 30
    assert torch.bincount(labels[a], minlength=10).tolist() == [3] * 10
    assert torch.equal(a, balanced_subset(labels, 3, 10, seed=5))
    assert not torch.equal(a, balanced_subset(labels, 3, 10, seed=6))
    with pytest.raises(GantricksError, match=r"labels_per_class=51.*allowed: 1\.\.50"):
        balanced_subset(labels, 51, 10, seed=0)


def test_weight_norm_layer_and_its_data_dependent_init():
    torch.manual_seed(0)
    layer = WNLinear(6, 4, train_scale=False)
    x = torch.randn(200, 6) * 3 + 1
    w = layer.v * (layer.g / layer.v.norm(dim=1)).unsqueeze(1)
    assert torch.allclose(layer(x), x @ w.T + layer.b, atol=1e-5)
    assert [n for n, _ in layer.named_parameters()] == ["v", "b"]  # g is fixed (a buffer)
    layer.initialising = True
    out = layer(x)
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    assert not layer.initialising  # once only
    assert torch.allclose(layer(x), out, atol=1e-5)


def test_tested_discriminator_is_the_debiased_moving_average():
    plugin = Labels(Labels.Config(average_rate=0.5))
    param = torch.nn.Parameter(torch.tensor([0.0]))
    plugin.params, plugin.average = [param], [torch.zeros(1)]
    for value in (1.0, 3.0, 7.0):
        param.data.fill_(value)
        plugin.gantricks_after_discriminator_step()
    # from zero: 0.5·7 + 0.25·3 + 0.125·1 = 4.375, divided by 1 − 0.5³ = 0.875
    assert plugin.average[0].item() == pytest.approx(4.375)
    with plugin.averaged_parameters():
        assert param.item() == pytest.approx(5.0)
    assert param.item() == 7.0  # restored


def _labelled(batch: int, sampling: str, n: int = 10) -> Labels:
    plugin = Labels(Labels.Config(labelled_batch=batch, labelled_sampling=sampling))
    plugin.labels = torch.arange(n) % 5
    plugin.set_labelled_batch(batch)
    return plugin


def test_cycled_labelled_batches_hold_every_example_evenly():
    torch.manual_seed(0)
    # batch = labelled set (the authors' 100 of 100): all of it, every step
    assert torch.equal(_labelled(10, "cycle").labelled_indices().sort().values, torch.arange(10))
    # 25 of 10: each example twice, five more without replacement
    for _ in range(20):
        counts = torch.bincount(_labelled(25, "cycle").labelled_indices(), minlength=10)
        assert counts.sum() == 25 and set(counts.tolist()) == {2, 3}
        assert (counts == 3).sum() == 5
    # 4 of 10: no repeats within a step, and every example drawn over many steps
    seen = torch.cat([_labelled(4, "cycle").labelled_indices() for _ in range(50)])
    assert all(len(set(seen[i : i + 4].tolist())) == 4 for i in range(0, 200, 4))
    assert set(seen.tolist()) == set(range(10))
    # replacement: uniform draws, so repeats within a step of 10 of 10 are the rule
    draws = [_labelled(10, "replacement").labelled_indices() for _ in range(20)]
    assert any(len(set(d.tolist())) < 10 for d in draws)


def test_confusion_matrix_and_per_class_errors():
    class Fixed(torch.nn.Module):
        """Predicts class 1 for every image whose first pixel is bright, else class 0."""

        def classify(self, x):
            bright = (x.flatten(1)[:, 0] > 0).long()
            return F.one_hot(bright, 3).float()

    plugin = Labels(Labels.Config())
    plugin.num_classes = 3
    images = torch.zeros(6, 1, 2, 2, dtype=torch.uint8)
    images[[1, 3, 4], 0, 0, 0] = 255  # bright: predicted 1
    plugin.test_images = images
    plugin.test_labels = torch.tensor([0, 1, 1, 0, 2, 2])

    trainer = _StandIn(Fixed(), images)
    confusion = plugin.test_confusion(trainer)
    # rows true, columns predicted: 0→0, 1→1, 1→0, 0→1, 2→1, 2→0
    assert confusion.tolist() == [[1, 1, 0], [1, 1, 0], [1, 1, 0]]
    assert plugin.test_errors(trainer) == 4


class _StandIn:
    """What test_confusion reads of a trainer: D, the device, training images, autocast."""

    def __init__(self, discriminator, train_images):
        self.discriminator = discriminator
        self.device = torch.device("cpu")
        self.data = type(
            "Data", (), {"images": train_images, "__len__": lambda _: len(train_images)}
        )()

    @staticmethod
    def autocast():
        return torch.autocast("cpu", enabled=False)


@pytest.fixture
def ssl_opts(tiny):
    return {
        **tiny,
        "batch_size": 50,
        "steps": 100,
        "log_every": 50,
        "lr_d": 0.003,
        "lr_g": 0.003,
        "model": "improved-gan-mlp",
        "labels": {"labels_per_class": 10, "eval_every": 50},
    }


def test_the_papers_mnist_networks(ssl_opts):
    """Section 5's MNIST pair, as the authors' code builds it: D 784-1000-500-250-250-250
    weight-normalised ReLU layers (scales fixed after the data-dependent init) with noise
    σ=0.3 on the input and 0.5 before every later layer and the 10-class head; G 100-500-500
    softplus with shift-only batch norm and a weight-normalised sigmoid output."""
    t, _ = prepare({**ssl_opts, "nz": 100}, plugins=[*QUIET, "labels", "feature_matching"])
    D, G = t.discriminator, t.generator
    trunk = [m for m in D.features if isinstance(m, WNLinear)]
    assert [tuple(m.v.shape) for m in trunk] == [
        (1000, 784),
        (500, 1000),
        (250, 500),
        (250, 250),
        (250, 250),
    ]
    assert not any(isinstance(m.g, torch.nn.Parameter) for m in trunk)
    sigmas = [m.sigma for m in D.modules() if isinstance(m, GaussianNoise)]
    assert sigmas == [0.3, 0.5, 0.5, 0.5, 0.5, 0.5]  # the last one is the head's input
    head = [m for m in D.head.modules() if isinstance(m, WNLinear)]
    assert len(head) == 1 and tuple(head[0].v.shape) == (10, 250)
    assert isinstance(head[0].g, torch.nn.Parameter)
    assert isinstance(G, MLPGenerator)
    layers = list(G.net)
    assert [type(m).__name__ for m in layers] == [
        "Linear",
        "ShiftOnlyBatchNorm",
        "Softplus",
        "Linear",
        "ShiftOnlyBatchNorm",
        "Softplus",
        "WNLinear",
    ]
    assert [tuple(layers[i].weight.shape) for i in (0, 3)] == [(500, 100), (500, 500)]
    assert all(m.norm.affine is False for m in layers if isinstance(m, ShiftOnlyBatchNorm))
    assert tuple(layers[6].v.shape) == (784, 500) and isinstance(layers[6].g, torch.nn.Parameter)
    with torch.no_grad():
        x = G(torch.randn(5, 100))
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1


def test_discriminator_loss_is_weighted_supervised_plus_unsupervised(ssl_opts):
    """D minimises w·CE(labelled) + BCE(real → 1) + BCE(fake → 0) on the K+1 logit."""
    from gantricks.data import to_float

    seen = {}

    class Spy:
        @hookimpl(trylast=True)  # after the plugins, before D's update
        def gantricks_discriminator_loss(self, trainer, terms, batch):
            plugin = trainer.plugins.plugins["labels"].obj
            with torch.no_grad():  # the whole labelled set, in order (labelled_batch = 100)
                logits = trainer.discriminator.classify(to_float(plugin.images))
            seen.update(terms=dict(terms), batch=batch, ce=F.cross_entropy(logits, plugin.labels))

    ssl = {**ssl_opts["labels"], "supervised_weight": 3.0, "labelled_batch": 100}
    t, _ = prepare(
        {**ssl_opts, "steps": 1, "labels": ssl},
        plugins=[*QUIET, "labels", "feature_matching"],
        extra_plugins=[(Spy(), "spy")],
    )
    for m in t.discriminator.modules():  # noise off, so the spy's forward pass is the same
        if isinstance(m, GaussianNoise):
            m.sigma = 0.0
    t.fit()
    terms, b = seen["terms"], seen["batch"]
    assert set(terms) == {"real", "fake", "supervised"}
    ones, zeros = torch.ones_like(b.real_logits), torch.zeros_like(b.fake_logits)
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(terms["real"], bce(b.real_logits, ones))
    torch.testing.assert_close(terms["fake"], bce(b.fake_logits, zeros))
    torch.testing.assert_close(terms["supervised"], 3.0 * seen["ce"])


def test_semi_supervised_run_learns_to_classify_glyphs(ssl_opts):
    # The small DCGAN pair keeps this fast; the paper's MLP is exercised by the resume test.
    opts = {**ssl_opts, "model": "dcgan"}
    trainer, _ = prepare(opts, plugins=[*QUIET, "labels", "feature_matching"])
    plugin = trainer.plugins.plugins["labels"].obj
    scalars = trainer.fit()
    # 100 labels: chance is 9,000 errors of 10,000; after 100 steps ~2,500 (seeded run).
    assert scalars["ssl/test_errors"] < 4000
    result = json.loads((trainer.run_dir / "ssl.json").read_text())
    assert result["labels"] == 100 and result["test_images"] == 10_000
    assert [h["step"] for h in result["history"]] == [50, 100]
    assert scalars["ssl/test_errors_current_d"] == result["history"][-1]["current_d"]
    assert result["test_errors"] == scalars["ssl/test_errors"] == plugin.history[-1]["test_errors"]
    confusion = torch.tensor(result["confusion"])
    assert confusion.sum() == 10_000 and confusion.shape == (10, 10)
    assert result["test_errors"] == confusion.sum() - confusion.trace()
    assert result["per_class_errors"] == result["history"][-1]["per_class"]
    assert sum(result["per_class_errors"]) == result["test_errors"]
    assert sorted(result["labelled_indices"]) == sorted(plugin.indices.tolist())
    logged = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").open()]
    assert {"loss_d/supervised", "loss_d/real", "loss_d/fake", "loss_g/feature_matching"} <= set(
        logged[-1]
    )
    assert "loss_g/adv" not in logged[-1]  # feature matching replaces the adversarial G loss


def test_semi_supervised_resume_continues_exactly(ssl_opts):
    plugins = [*QUIET, "labels", "feature_matching"]
    opts = {**ssl_opts, "steps": 8, "log_every": 4, "labels": {"eval_every": 4}}
    full, _ = prepare({**opts, "name": "full"}, plugins=plugins)
    full.fit()
    half, _ = prepare({**opts, "name": "half", "steps": 4}, plugins=plugins)
    half.fit()
    ckpt = checkpoint.load(half.run_dir / "checkpoints" / "last.pt")
    resumed, ckpt = prepare({**opts, "name": "half"}, plugins=plugins, resume=str(half.run_dir))
    resumed.fit(resume=ckpt)
    for a, b in zip(
        full.models.discriminator.state_dict().values(),
        resumed.models.discriminator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    assert resumed.last_scalars["ssl/test_errors"] == full.last_scalars["ssl/test_errors"]
    full_ssl = full.plugins.plugins["labels"].obj
    resumed_ssl = resumed.plugins.plugins["labels"].obj
    assert resumed_ssl.history == full_ssl.history
    for a, b in zip(full_ssl.average, resumed_ssl.average, strict=True):
        assert torch.equal(a, b)
    assert resumed.last_scalars["loss_d"] == full.last_scalars["loss_d"]


class StopAt:
    """Asks the trainer to stop after a given step, as Ctrl-C or a time limit would."""

    def __init__(self, step: int) -> None:
        self.step = step

    @hookimpl
    def gantricks_step_end(self, trainer, step: int) -> None:
        if step == self.step:
            trainer.stop_requested = True


def test_interrupted_run_reports_the_test_error_it_stopped_with(ssl_opts):
    opts = {**ssl_opts, "steps": 20, "model": "dcgan", "labels": {"eval_every": 4}}
    trainer, _ = prepare(
        opts,
        plugins=[*QUIET, "labels", "feature_matching"],
        extra_plugins=[(StopAt(6), "stop_at")],
    )
    trainer.fit()
    assert trainer.step == 6
    result = json.loads((trainer.run_dir / "ssl.json").read_text())
    assert [h["step"] for h in result["history"]] == [4, 6] and result["step"] == 6
    # The checkpoint was saved before that last evaluation, and resumes as usual.
    saved = checkpoint.load(trainer.run_dir / "checkpoints" / "last.pt")
    assert saved["step"] == 6
    assert [h["step"] for h in saved["plugins"]["labels"]["history"]] == [4]


def test_dcgan_variant_has_a_k_class_head(ssl_opts):
    opts = {**ssl_opts, "steps": 2, "model": "dcgan"}
    trainer, _ = prepare(opts, plugins=[*QUIET, "labels", "feature_matching"])
    d = trainer.discriminator
    x = torch.zeros(3, 1, 28, 28)
    assert d.classify(x).shape == (3, 10)
    logit, features = d(x)
    assert torch.allclose(logit, torch.logsumexp(d.classify(x), 1, keepdim=True), atol=1e-5)
    assert features.shape == (3, d.feature_dim)
    trainer.fit()
    assert "ssl/test_errors" in trainer.last_scalars


def test_unlabelled_dataset_is_refused(tiny, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(folder / f"{i}.png")
    opts = {**tiny, "dataset": "folder", "data_dir": str(folder)}
    with pytest.raises(GantricksError, match="labels needs a labelled dataset; 'folder'"):
        prepare(opts, plugins=[*QUIET, "labels"])


def test_cli_flags_add_the_plugins_and_presets():
    parser = build_parser()
    args = parser.parse_args(
        ["train", "--semi-supervised", "--labels-per-class", "20", "--set", "lr_d=0.001"]
    )
    opts = train_options(args)
    assert opts["labels"] == {"labels_per_class": 20} and opts["model"] == "improved-gan-mlp"
    assert opts["lr_d"] == 0.001 and opts["lr_g"] == 0.003 and opts["batch_size"] == 100
    assert opts["adam_eps"] == 1e-4 and opts["feature_matching"] == {"norm": "mse"}
    # Any preset can be overridden, plugin options too.
    custom = parser.parse_args(["train", "--semi-supervised", "--set", "feature_matching.norm=l1"])
    assert train_options(custom)["feature_matching"] == {"norm": "l1"}
    assert train_plugins(args, opts) == ["labels", "feature_matching"]
    # A config file's plugin list is kept and extended.
    assert train_plugins(args, {"plugins": ["minibatch"]}) == [
        "minibatch",
        "labels",
        "feature_matching",
    ]
    # ... also when the file gives it as one comma-separated string.
    assert train_plugins(args, {"plugins": "minibatch,label_smooth"}) == [
        "minibatch",
        "label_smooth",
        "labels",
        "feature_matching",
    ]
    # Resuming: no presets over the saved settings, and the checkpoint's plugins stay.
    resumed = parser.parse_args(["train", "--semi-supervised", "--resume", "runs/x"])
    assert "lr_d" not in train_options(resumed) and train_plugins(resumed, {}) is None
    # Without --semi-supervised it sets the labels plugin's option (all labels by default).
    alone = train_options(parser.parse_args(["train", "--labels-per-class", "5"]))
    assert alone == {"labels": {"labels_per_class": 5}}
    assert Labels.Config().labels_per_class is None


def test_seeds_script_runs_each_seed_and_summarises(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "seeds.py"
    summary = tmp_path / "summary.json"
    train = [
        "--semi-supervised", "--dataset", "glyphs", "--steps", "4", "--batch-size", "20",
        "--device", "cpu", "--name", "ssl", "--out-dir", str(tmp_path / "runs"),
        "--plugins", "no:progress,no:tensorboard,no:eval,no:samples",
        "--model", "dcgan", "--set", "ngf=8", "ndf=8", "nz=16", "labels.eval_every=2",
    ]  # fmt: skip

    def seeds_py(*args):
        """Run the script; return its output and the summary's rows."""
        out = subprocess.run(
            [sys.executable, str(script), "--summary", str(summary), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return out, json.loads(summary.read_text())["runs"]

    out, rows = seeds_py("--seeds", "0", "1", "--", *train)
    assert [(r["seed"], r["exit_code"], r["step"]) for r in rows] == [(0, 0, 4), (1, 0, 4)]
    for r in rows:
        ssl = json.loads((tmp_path / "runs" / f"ssl-seed{r['seed']}" / "ssl.json").read_text())
        assert r["test_errors"] == ssl["test_errors"] and ssl["step"] == 4
    assert "test errors over seeds" in out.stdout
    # --resume continues the same folders (seed read from each), stopped and summarised alike.
    folders = [str(tmp_path / "runs" / f"ssl-seed{s}") for s in (1, 0)]
    out, rows = seeds_py("--resume", *folders, "--", "--steps", "6")
    assert [(r["seed"], r["exit_code"], r["step"]) for r in rows] == [(1, 0, 6), (0, 0, 6)]
    assert [r["run"] for r in rows] == folders


def test_ssl_table_reads_histories_by_epoch(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ssl_table.py"
    spec = importlib.util.spec_from_file_location("ssl_table", path)
    ssl_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ssl_table)

    def run(name, history):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "ssl.json").write_text(json.dumps({"history": history}))
        (folder / "metrics.jsonl").write_text(json.dumps({"step": 50, "epoch": 1.0}) + "\n")
        return folder

    def entry(step, errors, current, sevens):
        per_class = [0] * 10
        per_class[7] = sevens
        return {"step": step, "test_errors": errors, "current_d": current, "per_class": per_class}

    a = run("a", [entry(50, 2000, 2100, 300), entry(100, 1500, 1400, 200), entry(500, 120, 110, 9)])
    b = run("b", [entry(100, 1800, 1700, 250), entry(260, 180, 190, 40)])
    text = ssl_table.table([a, b], [2, 5, 10], 7, ["a", "b"])
    lines = text.splitlines()
    assert lines[0] == "| run | 2 | 5 | 10 | last evaluation |"
    # 50 steps an epoch: epoch 2 is step 100; b has nothing in (200, 250] for epoch 5 and
    # stopped at step 260 (epoch 5.2), before epoch 10.
    assert lines[2] == "| a | 1,500 (1,400) / 200 | — | 120 (110) / 9 | epoch 10.0: 120 (110) / 9 |"
    assert lines[3] == "| b | 1,800 (1,700) / 250 | — | — | epoch 5.2: 180 (190) / 40 |"
    # mean ± sample sd of 120 and 180
    assert (
        lines[-1] == "mean of the last evaluations: 150.0 ± 42.4 (runs stopped at different steps)"
    )


def test_batch_norm_is_tested_with_statistics_of_real_images():
    """model=dcgan: D is tested with batch-norm statistics of real training images (not the
    running ones, which training also fed generated images), and nothing is left changed."""
    from gantricks.sampling import running_statistics_from

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), GaussianNoise(1.0))
    net.train()
    bn = net[1]
    with torch.no_grad():
        bn.running_mean.fill_(50.0)  # as if skewed by generated images
    before = {k: v.clone() for k, v in net.state_dict().items()}
    real = [torch.randn(8, 3) + 2, torch.randn(8, 3) - 1]
    with torch.no_grad():
        h = net[0](torch.cat(real))
    with running_statistics_from(net, iter(real)):
        assert not net.training and not net[2].training  # evaluation mode, no noise
        torch.testing.assert_close(bn.running_mean, h.mean(0))  # equal weight per batch
        torch.testing.assert_close(bn.running_var, (h[:8].var(0) + h[8:].var(0)) / 2)
        out = net(torch.zeros(1, 3))
        expected = (net[0](torch.zeros(1, 3)) - h.mean(0)) / (bn.running_var + bn.eps).sqrt()
        torch.testing.assert_close(out, expected * bn.weight + bn.bias)
    assert net.training and bn.momentum == 0.1
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_confusion_uses_batch_norm_statistics_of_the_first_training_images():
    class BND(torch.nn.Module):
        """Classifies by the first three pixels after batch norm (no affine)."""

        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm1d(3, affine=False)

        def classify(self, x):
            return self.bn(x.flatten(1)[:, :3])

        def forward(self, x):
            return self.classify(x), None

    torch.manual_seed(0)
    train = torch.randint(0, 256, (300, 1, 2, 2), dtype=torch.uint8)
    train[:, 0, 0, 0] = torch.randint(150, 256, (300,), dtype=torch.uint8)  # pixel 0 bright
    plugin = Labels(Labels.Config(bn_examples=200))
    plugin.num_classes = 3
    plugin.test_images = torch.randint(0, 256, (50, 1, 2, 2), dtype=torch.uint8)
    plugin.test_labels = torch.randint(0, 3, (50,))
    d = BND()
    with torch.no_grad():
        d.bn.running_mean.fill_(5.0)  # skewed, as if by generated images
    d.train()

    confusion = plugin.test_confusion(_StandIn(d, train))
    # By hand: the first 200 training images in two batches of 100, each counted equally.
    h = to_float(train[:200]).flatten(1)[:, :3]
    mean = h.mean(0)
    var = (h[:100].var(0) + h[100:].var(0)) / 2
    x = to_float(plugin.test_images).flatten(1)[:, :3]
    pred = ((x - mean) / (var + d.bn.eps).sqrt()).argmax(1)
    expected = torch.bincount(plugin.test_labels * 3 + pred, minlength=9).view(3, 3)
    assert torch.equal(confusion, expected)
    assert d.training and torch.equal(d.bn.running_mean, torch.full((3,), 5.0))  # restored
