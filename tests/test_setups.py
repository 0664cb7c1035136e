"""The paper's set-ups: the models, their discriminator interface, weight norm's data-
dependent initialisation, labels with minibatch features, and the trainer options the
authors used (g_steps, the minimax loss, the learning-rate decay)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gantricks import DiscriminatorLike, GantricksError, GeneratorLike, Plugin, hookimpl
from gantricks.bench.combos import TRICKS
from gantricks.models import MODELS, build_models
from gantricks.models.layers import (
    GaussianNoise,
    WNConv2d,
    WNConvTranspose2d,
    WNLinear,
    initialising,
)
from gantricks.run import prepare
from gantricks.sampling import batch_norm_from_first
from gantricks.train.schedule import lr_factor

from .conftest import QUIET


# ------------------------------------------------------------------------- models
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize(("size", "channels"), [(28, 1), (32, 3), (64, 3)])
def test_every_model_builds_at_each_size_and_has_the_interface(model, size, channels):
    if model == "improved-gan-mlp" and size == 64:
        pytest.skip("the MLP is the paper's 28x28 model (any size works, 64x64x3 is large)")
    torch.manual_seed(0)
    m = build_models(16, channels, size, 8, 8, model)
    g, d = m.generator, m.discriminator
    assert isinstance(g, GeneratorLike) and isinstance(d, DiscriminatorLike)
    x = g(torch.randn(4, 16))
    assert x.shape == (4, channels, size, size) and x.abs().max() <= 1
    logit, features = d(x)
    assert logit.shape == (4, 1) and features.shape == (4, d.feature_dim)
    assert d.blocks()  # feature matching's layer option has blocks to choose from
    d.set_classes(7)
    d.eval()  # noise and dropout off: two passes agree
    logit, _ = d(x)
    assert d.classify(x).shape == (4, 7)
    torch.testing.assert_close(logit, torch.logsumexp(d.classify(x), 1, keepdim=True))


def test_improved_gan_is_the_authors_cifar_network():
    torch.manual_seed(0)
    m = build_models(100, 3, 32, 64, 64, "improved-gan")
    d = m.discriminator
    convs = [x for x in d.features.modules() if isinstance(x, WNConv2d)]
    assert [(c.v.shape[0], c.v.shape[2], c.stride, c.padding) for c in convs] == [
        (96, 3, 1, 1), (96, 3, 1, 1), (96, 3, 2, 1),
        (192, 3, 1, 1), (192, 3, 1, 1), (192, 3, 2, 1),
        (192, 3, 1, 0), (192, 1, 1, 0), (192, 1, 1, 0),
    ]  # fmt: skip
    assert [s.sigma for s in d.modules() if isinstance(s, GaussianNoise)] == [0.2]
    assert [p.p for p in d.modules() if isinstance(p, nn.Dropout)] == [0.5, 0.5]
    assert not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in d.modules())
    assert all(x.negative_slope == 0.2 for x in d.modules() if isinstance(x, nn.LeakyReLU))
    assert d.feature_dim == 192 and isinstance(d.head, WNLinear)
    g = m.generator
    deconvs = [x for x in g.modules() if isinstance(x, nn.ConvTranspose2d)]
    assert [(x.in_channels, x.out_channels, x.kernel_size) for x in deconvs] == [
        (512, 256, (5, 5)),
        (256, 128, (5, 5)),
    ]
    last = [x for x in g.modules() if isinstance(x, WNConvTranspose2d)]
    assert len(last) == 1 and tuple(last[0].v.shape) == (128, 3, 5, 5)
    assert g.dense[0].weight.shape == (4 * 4 * 512, 100)


@pytest.mark.parametrize(
    ("layer", "x", "dims"),
    [
        (lambda: WNLinear(6, 4, init_scale=0.1), torch.randn(300, 6) * 3 + 1, (0,)),
        (lambda: WNConv2d(3, 5, 3, padding=1), torch.randn(20, 3, 8, 8) * 2 - 1, (0, 2, 3)),
        (lambda: WNConvTranspose2d(4, 2, 5, init_scale=0.1), torch.randn(20, 4, 4, 4), (0, 2, 3)),
    ],
    ids=["dense", "conv", "deconv"],
)
def test_weight_norm_data_init_against_its_formula(layer, x, dims):
    """w = g·v/‖v‖ per output unit; after the init pass, this batch's outputs have zero mean
    and standard deviation init_scale per unit (the authors' init_stdv), and the layer
    computes exactly that from then on."""
    torch.manual_seed(0)
    m = layer()
    unit = m.norm_dim
    other = [k for k in range(m.v.dim()) if k != unit]
    norm = m.v.detach().square().sum(other).sqrt()
    w = m.weight().detach()
    shape = [1] * m.v.dim()
    shape[unit] = -1
    torch.testing.assert_close(w, m.v.detach() * (m.g / norm).view(shape))
    with initialising(m) as any_found, torch.no_grad():
        assert any_found
        out = m(x)
    assert not m.initialising
    torch.testing.assert_close(out.mean(dims), torch.zeros(out.shape[1]), atol=1e-5, rtol=0)
    std = out.std(dims, unbiased=False)
    torch.testing.assert_close(std, torch.full_like(std, m.init_scale), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(m(x), out)


def test_the_trainer_initialises_every_weight_normalised_layer_from_data(tiny):
    trainer, _ = prepare(
        {**tiny, "model": "improved-gan", "steps": 1, "init_examples": 64},
        plugins=[*QUIET, "minibatch"],
    )
    before = [m.g.clone() for m in trainer.discriminator.modules() if isinstance(m, WNConv2d)]
    trainer.hook.gantricks_train_start(trainer=trainer)
    after = [m.g for m in trainer.discriminator.modules() if isinstance(m, WNConv2d)]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # The head saw the minibatch features after their own initialisation: its outputs on
    # the same images have the authors' standard deviation 0.1 (noise and dropout aside).
    d = trainer.discriminator
    mb = d.transforms[0]
    assert not mb.initialising and mb.log_scale.abs().sum() > 0


# --------------------------------------------------------------- labels + minibatch
def test_k_plus_one_with_a_minibatch_head_by_hand(tiny):
    trainer, _ = prepare(
        {**tiny, "minibatch": {"kernels": 3, "kernel_dim": 2}},
        plugins=[*QUIET, "labels", "minibatch"],
    )
    d = trainer.discriminator
    x = torch.randn(5, 1, 28, 28).clamp(-1, 1)
    with torch.no_grad():
        f = d.features(x)
        mb = d.transforms[0]
        m = (f @ mb.T.reshape(f.shape[1], -1)).reshape(5, 3, 2)
        o = torch.zeros(5, 3)
        for i in range(5):
            for j in range(5):
                if i != j:  # the authors' layer leaves j = i out
                    o[i] += torch.exp(-(m[i] - m[j]).abs().sum(-1))
        h = torch.cat([f, o + mb.bias], 1)
        class_logits = h @ d.head.weight.T + d.head.bias
        logit, features = d(x)
    assert class_logits.shape == (5, 10)
    torch.testing.assert_close(d.classify(x), class_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        logit, torch.logsumexp(class_logits, 1, keepdim=True), atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(features, f)
    assert trainer.fit()["loss_d/supervised"] > 0


# ------------------------------------------------------------------ feature matching
def test_feature_matching_normalises_both_batches_with_the_real_statistics(tiny):
    """With a batch-normalised D, f(real) and f(fake) come from one pass whose batch norm
    uses the real batch's mean and variance, so f(fake)'s per-channel means are kept."""
    seen = {}

    def by_hand(d, x, n):  # D's trunk with every batch norm using rows [:n] of its input
        h = x
        for layer in d.features:
            if isinstance(layer, nn.BatchNorm2d):
                mu = h[:n].mean((0, 2, 3), keepdim=True)
                var = h[:n].var((0, 2, 3), unbiased=False, keepdim=True)
                h = (h - mu) / torch.sqrt(var + layer.eps) * layer.weight.view(1, -1, 1, 1)
                h = h + layer.bias.view(1, -1, 1, 1)
            else:
                h = layer(h)
        return h

    class Spy(Plugin):
        @hookimpl(trylast=True)  # after feature matching, with the D it used
        def gantricks_generator_loss(self, trainer, terms, batch):
            n = batch.gen_real.shape[0]
            with torch.no_grad():
                h = by_hand(trainer.discriminator, torch.cat([batch.gen_real, batch.gen_fake]), n)
            seen.update(
                got=terms["feature_matching"].detach(),
                want=(h[:n].mean(0) - h[n:].mean(0)).square().sum(),
                d=trainer.discriminator,
            )

    trainer, _ = prepare({**tiny, "steps": 2}, plugins=[*QUIET, "feature_matching"],
                         extra_plugins=[(Spy(), "spy")])  # fmt: skip
    trainer.fit()
    torch.testing.assert_close(seen["got"], seen["want"], atol=1e-5, rtol=1e-4)
    # The joint pass leaves the running statistics alone.
    bn = next(m for m in seen["d"].features if isinstance(m, nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    with torch.no_grad(), batch_norm_from_first(seen["d"].features, 4):
        seen["d"].features(torch.randn(8, 1, 28, 28))
    assert torch.equal(bn.running_mean, stats)


def test_feature_matching_normalisation_separate_is_the_old_loss(tiny):
    seen = {}

    class Spy(Plugin):
        @hookimpl(trylast=True)
        def gantricks_generator_loss(self, trainer, terms, batch):
            with torch.no_grad():
                _, real = trainer.discriminator(batch.gen_real)
            want = (real.mean(0) - batch.gen_features.detach().mean(0)).square().sum()
            seen.update(got=terms["feature_matching"].detach(), want=want)

    opts = {**tiny, "steps": 1, "feature_matching": {"normalisation": "separate"}}
    trainer, _ = prepare(opts, plugins=[*QUIET, "feature_matching"], extra_plugins=[(Spy(), "s")])
    trainer.fit()
    torch.testing.assert_close(seen["got"], seen["want"])


# ------------------------------------------------------------------ trainer options
class CountSteps(Plugin):
    def __init__(self):
        super().__init__()
        self.g = self.d = 0

    @hookimpl
    def gantricks_after_generator_step(self):
        self.g += 1

    @hookimpl
    def gantricks_after_discriminator_step(self):
        self.d += 1


def test_g_steps_counts_generator_updates_and_draws_new_z(tiny):
    counter = CountSteps()
    trainer, _ = prepare({**tiny, "steps": 4, "g_steps": 3}, plugins=QUIET,
                         extra_plugins=[(counter, "count")])  # fmt: skip
    g_opt_steps = []
    real_step = trainer.opt_g.step
    trainer.opt_g.step = lambda *a, **k: (g_opt_steps.append(1), real_step(*a, **k))[1]
    trainer.fit()
    assert (counter.d, counter.g, len(g_opt_steps)) == (4, 12, 12)
    # Three z per step for "same" (the D step's and two more), from the run's stream.
    inputs = trainer._draw()
    assert len(inputs) == 4 and not torch.equal(inputs[1], inputs[2])


def test_minimax_generator_loss_is_log_one_minus_d(tiny):
    seen = {}

    class Spy(Plugin):
        @hookimpl(trylast=True)
        def gantricks_generator_loss(self, terms, batch):
            seen.update(adv=terms["adv"].detach(), logits=batch.gen_logits.detach())

    trainer, _ = prepare({**tiny, "steps": 1, "generator_loss": "minimax"}, plugins=QUIET,
                         extra_plugins=[(Spy(), "spy")])  # fmt: skip
    trainer.fit()
    d = torch.sigmoid(seen["logits"].double())
    torch.testing.assert_close(seen["adv"].double(), torch.log1p(-d).mean(), atol=1e-6, rtol=1e-5)


def test_linear_lr_decay_by_epochs_and_by_steps(tiny):
    from gantricks.config import validate_core

    c = validate_core({"lr_decay_epochs": 2})
    # 6 epochs of 10 steps: full rate for epochs 0-3, then 2/2 ... as the authors' min(3 - e/400, 1)
    factors = [lr_factor(c, s, 60, 10) for s in range(0, 60, 10)]
    assert factors == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    c = validate_core({"lr_decay_steps": 4})
    assert [lr_factor(c, s, 10, 3) for s in range(10)] == [1, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25]
    trainer, _ = prepare({**tiny, "steps": 4, "lr_decay_steps": 2}, plugins=QUIET)
    trainer.fit()
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)
    c = validate_core({"lr_decay_fraction": 0.25})
    assert [lr_factor(c, s, 8, 3) for s in range(8)] == [1, 1, 1, 1, 1, 1, 1.0, 0.5]
    with pytest.raises(GantricksError, match="not both"):
        validate_core({"lr_decay_steps": 2, "lr_decay_epochs": 1.0})


@pytest.mark.parametrize(
    "options",
    [
        {"g_steps": 2},
        {"generator_loss": "minimax"},
        {"lr_decay_steps": 5},
        {"g_steps": 2, "generator_batch": "fresh"},
    ],
    ids=["g_steps", "minimax", "lr_decay", "g_steps-fresh"],
)
def test_each_new_option_resumes_exactly(tiny, options):
    """A run stopped at step 3 of 6 and resumed equals the straight run (a learning-rate
    schedule is a function of the step and the run's length)."""

    class StopAt(Plugin):
        @hookimpl
        def gantricks_step_end(self, trainer, step):
            if step == 3:
                trainer.stop_requested = True

    opts = {**tiny, **options, "steps": 6}
    full, _ = prepare({**opts, "name": "full"}, plugins=QUIET)
    full.fit()
    half, _ = prepare({**opts, "name": "half"}, plugins=QUIET, extra_plugins=[(StopAt(), "stop")])
    half.fit()
    assert half.step == 3
    resumed, ckpt = prepare({}, resume=half.run_dir)
    resumed.fit(resume=ckpt)
    for part in ("generator", "discriminator"):
        a = getattr(full.models, part).state_dict()
        b = getattr(resumed.models, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    assert full.opt_g.param_groups[0]["lr"] == resumed.opt_g.param_groups[0]["lr"]


def test_vbn_needs_batch_norm_to_replace(tiny):
    with pytest.raises(GantricksError, match="discriminator of model 'improved-gan' has no batch"):
        prepare({**tiny, "model": "improved-gan", "virtual_batchnorm": {"discriminator": True}},
                plugins=[*QUIET, "virtual_batchnorm"])  # fmt: skip
    # G's batch norm (a 1-D one after the dense layer, 2-D ones after the deconvolutions)
    # becomes virtual on every model.
    for model in MODELS:
        t, _ = prepare({**tiny, "model": model, "steps": 1}, plugins=[*QUIET, "virtual_batchnorm"])
        assert not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in t.generator.modules()
        ), model


def test_unknown_model_is_a_clear_error(tiny):
    with pytest.raises(GantricksError, match=r"model='improved_gan' is not a model \(did you mean"):
        prepare({**tiny, "model": "improved_gan"}, plugins=QUIET)


def test_lr_decay_turns_the_cuda_graph_off(tiny):
    with pytest.warns(UserWarning, match="cuda_graph=true is ignored"):
        prepare({**tiny, "cuda_graph": True, "lr_decay_steps": 3}, plugins=QUIET)


# ------------------------------------------------------------- every combination
TRICK_PLUGINS = list(TRICKS)  # every Improved-GAN trick the bench knows


def _one_step_each(tiny, model: str, subsets) -> None:
    opts = {
        **tiny, "model": model, "batch_size": 8, "steps": 1, "log_every": 1,
        "init_examples": 16, "virtual_batchnorm": {"reference_size": 4},
        "labels": {"labels_per_class": 2, "eval_every": 0},
    }  # fmt: skip
    for subset in subsets:
        names = list(subset)
        run = {key: v for key, v in opts.items() if key not in TRICK_PLUGINS or key in names}
        trainer, _ = prepare(
            {**run, "name": "+".join(names) or "none"}, plugins=[*QUIET, "no:samples", *names]
        )
        if "labels" in names:  # its test-error pass reads the whole test split: not here
            trainer.plugins.plugins["labels"].obj.evaluate = lambda *a: None
        scalars = trainer.fit()
        assert trainer.step == 1, (model, names)
        assert all(math.isfinite(v) for k, v in scalars.items() if k.startswith("loss")), names


@pytest.mark.parametrize("model", list(MODELS))
def test_each_trick_alone_with_labels_and_all_together_train_on_every_model(tiny, model):
    """No combination fails mid-run (default suite: each trick alone, each with labels, all
    six; the slow test below takes all 64 subsets)."""
    others = [t for t in TRICK_PLUGINS if t != "labels"]
    subsets = [(), *[(t,) for t in TRICK_PLUGINS], *[("labels", t) for t in others]]
    _one_step_each(tiny, model, [*subsets, tuple(TRICK_PLUGINS)])


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
def test_every_subset_of_the_tricks_trains_a_step_on_every_model(tiny, model):
    """Each of the 64 subsets of the six tricks trains one step (finite losses) on every
    model, in the default options."""
    import itertools

    subsets = [
        s for k in range(len(TRICK_PLUGINS) + 1) for s in itertools.combinations(TRICK_PLUGINS, k)
    ]
    _one_step_each(tiny, model, subsets)
