"""Each Improved-GAN trick against its formula on small tensors, and end to end."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from gantricks import GantricksError, hookimpl
from gantricks.run import load_models, prepare
from gantricks_plugins.feature_matching import feature_matching_loss
from gantricks_plugins.historical_averaging import RunningMean
from gantricks_plugins.minibatch import MinibatchFeatures, minibatch_features
from gantricks_plugins.virtual_batchnorm import VirtualBatchNorm2d, WithReference

from .conftest import QUIET, SHARED_DATA, TRICKS, mnist_available


class Spy:
    """Keeps the last loss terms and batch each loss hook saw (runs after the plugins)."""

    def __init__(self):
        self.d = self.g = self.batch = None

    @hookimpl(trylast=True)
    def gantricks_discriminator_loss(self, terms, batch):
        self.d, self.batch = dict(terms), batch

    @hookimpl(trylast=True)
    def gantricks_generator_loss(self, terms, batch):
        self.g = dict(terms)


# ------------------------------------------------------------------ label smoothing
def test_label_smooth_targets_and_loss(tiny):
    spy = Spy()
    t, _ = prepare(
        {**tiny, "steps": 1}, plugins=[*QUIET, "label_smooth"], extra_plugins=[(spy, "spy")]
    )
    t.fit()
    b = spy.batch
    assert (b.real_target, b.fake_target) == (0.9, 0.0)
    expected_real = F.binary_cross_entropy_with_logits(
        b.real_logits, torch.full_like(b.real_logits, 0.9)
    )
    expected_fake = F.binary_cross_entropy_with_logits(
        b.fake_logits, torch.zeros_like(b.fake_logits)
    )
    torch.testing.assert_close(spy.d["real"], expected_real)
    torch.testing.assert_close(spy.d["fake"], expected_fake)
    # The generator's target stays 1 (smoothing is the discriminator's).
    expected_adv = F.binary_cross_entropy_with_logits(b.gen_logits, torch.ones_like(b.gen_logits))
    torch.testing.assert_close(spy.g["adv"], expected_adv)


def test_label_smooth_two_sided_only_when_asked(tiny):
    with pytest.raises(GantricksError, match=r"two_sided=true"):
        prepare({**tiny, "label_smooth": {"beta": 0.1}}, plugins=["label_smooth"])
    spy = Spy()
    t, _ = prepare(
        {**tiny, "steps": 1, "label_smooth": {"alpha": 0.8, "beta": 0.1, "two_sided": True}},
        plugins=[*QUIET, "label_smooth"],
        extra_plugins=[(spy, "spy")],
    )
    t.fit()
    assert (spy.batch.real_target, spy.batch.fake_target) == (0.8, 0.1)


# ------------------------------------------------------------------ feature matching
def test_feature_matching_loss_hand_computed():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    fake = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0]])  # mean (1, 1)
    assert feature_matching_loss(real, fake, "l2sq").item() == pytest.approx(1.0 + 4.0)
    assert feature_matching_loss(real, fake, "l1").item() == pytest.approx((1.0 + 2.0) / 2)
    assert feature_matching_loss(real, fake, "mse").item() == pytest.approx((1.0 + 4.0) / 2)
    # Zero when the means match, even if the examples differ.
    assert feature_matching_loss(real, real.flip(0), "l2sq").item() == 0.0


def test_feature_matching_replaces_adversarial_loss(tiny):
    # Each batch normalised by its own statistics (the default's formula: test_setups.py).
    spy = Spy()
    opts = {**tiny, "steps": 1, "feature_matching": {"normalisation": "separate"}}
    t, _ = prepare(opts, plugins=[*QUIET, "feature_matching"], extra_plugins=[(spy, "spy")])
    D = t.discriminator
    t.fit()
    assert set(spy.g) == {"feature_matching"}
    b = spy.batch
    # "current": real features from the updated D, generated features from the G pass.
    with torch.no_grad():
        _, real_now = D(b.real)
    expected = (real_now.mean(0) - b.gen_features.mean(0)).square().sum()
    torch.testing.assert_close(spy.g["feature_matching"], expected)


def test_feature_matching_add_mode_intermediate_layer(tiny):
    """weight·mean|E f₁(real) − E f₁(fake)| beside the adversarial term, f₁ the first
    block's activations; with real_features=discriminator_step the real ones are those of
    the D step, before D's update."""
    seen: dict[str, list[torch.Tensor]] = {"d_step": [], "updated": [], "got": [], "fake": []}

    class Check:
        @hookimpl(trylast=True)
        def gantricks_discriminator_loss(self, trainer, terms, batch):
            with torch.no_grad():  # D is not yet updated when its loss is formed
                seen["d_step"].append(trainer.discriminator.features[:2](batch.real))

        @hookimpl(trylast=True)
        def gantricks_generator_loss(self, trainer, terms, batch):
            first = trainer.discriminator.features[:2]  # conv + LeakyReLU, updated D
            with torch.no_grad():
                seen["updated"].append(first(batch.real))
                seen["fake"].append(first(batch.fake))
            seen["got"].append(terms["feature_matching"].detach())

    def expected(real, fake):
        return 0.5 * (real.flatten(1).mean(0) - fake.flatten(1).mean(0)).abs().mean()

    spy = Spy()
    opts = {
        **tiny,
        "steps": 2,
        "feature_matching": {
            "mode": "add",
            "weight": 0.5,
            "layer": 1,
            "norm": "l1",
            "normalisation": "separate",
            "real_features": "discriminator_step",
        },
    }
    t, _ = prepare(
        opts,
        plugins=[*QUIET, "feature_matching"],
        extra_plugins=[(spy, "spy"), (Check(), "check")],
    )
    t.fit()
    assert set(spy.g) == {"adv", "feature_matching"}
    assert len(seen["got"]) == 2
    lists = (seen[k] for k in ("got", "d_step", "updated", "fake"))
    for got, real, updated, fake in zip(*lists, strict=True):
        torch.testing.assert_close(got, expected(real, fake))
        assert not torch.allclose(got, expected(updated, fake))  # the D step's, not the new D's
    with pytest.raises(GantricksError, match=r"layer=7 is not a discriminator block.*1\.\.2"):
        bad, _ = prepare(
            {**tiny, "feature_matching": {"layer": 7}}, plugins=[*QUIET, "feature_matching"]
        )
        bad.fit()


@pytest.mark.parametrize(
    "others", [[], ["label_smooth"]], ids=["alone", "label_smooth-decides-the-targets"]
)
def test_feature_matching_layer_hook_matches_manual_forward(tiny, others):
    """layer=1 matches the first block's activations, as computed by hand, at every step,
    also when another plugin answers the (firstresult) targets hook before it."""
    seen: dict[str, list[torch.Tensor]] = {"expected": [], "got": []}

    class Check:
        @hookimpl(trylast=True)
        def gantricks_generator_loss(self, trainer, terms, batch):
            first = trainer.discriminator.features[:2]  # conv + LeakyReLU
            with torch.no_grad():
                real = first(batch.real)
            fake = first(batch.fake)
            diff = real.flatten(1).mean(0) - fake.flatten(1).mean(0)
            seen["expected"].append(diff.square().sum().detach())
            seen["got"].append(terms["feature_matching"].detach())

    t, _ = prepare(
        {**tiny, "steps": 3, "feature_matching": {"layer": 1}},
        plugins=[*QUIET, "feature_matching", *others],
        extra_plugins=[(Check(), "c")],
    )
    t.fit()
    assert len(seen["got"]) == 3
    torch.testing.assert_close(seen["got"], seen["expected"])


# ------------------------------------------------------------ minibatch discrimination
def test_minibatch_features_equal_direct_loop():
    torch.manual_seed(0)
    n, a, b, c = 4, 6, 3, 2
    f = torch.randn(n, a)
    T = torch.randn(a, b, c) * 0.3
    got = minibatch_features(f, T)
    M = torch.einsum("na,abc->nbc", f, T)
    expected = torch.zeros(n, b)
    for i in range(n):
        for j in range(n):
            for k in range(b):
                expected[i, k] += torch.exp(-(M[i, k] - M[j, k]).abs().sum())
    torch.testing.assert_close(got, expected)


def test_discriminator_sees_real_and_generated_batches_apart(tiny):
    """Each minibatch D sees is all real or all generated (batch norm's statistics and
    minibatch discrimination's o(x) are over one kind only): the D step's logits equal D
    run on the real batch alone and on the generated batch alone."""
    seen = []

    class Check:
        @hookimpl(trylast=True)
        def gantricks_discriminator_loss(self, trainer, terms, batch):
            d = copy.deepcopy(trainer.discriminator)  # same weights, BN in training mode
            with torch.no_grad():
                real_alone, fake_alone = d(batch.real)[0], d(batch.fake.detach())[0]
            seen.append((batch.real_logits, real_alone, batch.fake_logits, fake_alone))

    opts = {**tiny, "steps": 2, "minibatch": {"kernels": 4, "kernel_dim": 3}}
    t, _ = prepare(opts, plugins=[*QUIET, "minibatch"], extra_plugins=[(Check(), "check")])
    t.fit()
    assert len(seen) == 2
    for real_logits, real_alone, fake_logits, fake_alone in seen:
        torch.testing.assert_close(real_logits.detach(), real_alone)
        torch.testing.assert_close(fake_logits.detach(), fake_alone)


def test_minibatch_sees_batch_diversity():
    torch.manual_seed(0)
    head = MinibatchFeatures(
        in_features=8, kernels=4, kernel_dim=3, init_std=0.5, weight_norm=False
    )
    x = torch.randn(1, 8)
    same = x.repeat(5, 1)
    distinct = torch.cat([x, torch.randn(4, 8) * 3])
    # Identical examples: every distance is 0, so o = N for every kernel.
    torch.testing.assert_close(minibatch_features(same, head.T), torch.full((5, 4), 5.0))
    without_self = minibatch_features(same, head.T, exclude_self=True)
    torch.testing.assert_close(without_self, torch.full((5, 4), 4.0))
    # The same first example gets different features when its batch-mates differ ...
    assert not torch.allclose(head(same)[0], head(distinct)[0])
    torch.testing.assert_close(head(same)[0, :8], x[0])  # ... appended to its own
    # Plain head would not: the logit depends on the example alone.
    lin = torch.nn.Linear(8, 1)
    torch.testing.assert_close(lin(same)[0], lin(distinct)[0])


def test_minibatch_appends_its_features_before_the_head_and_trains(tiny):
    t, _ = prepare(
        {**tiny, "steps": 2, "minibatch": {"kernels": 7, "kernel_dim": 3}},
        plugins=[*QUIET, "minibatch"],
    )
    d = t.discriminator
    (mb,) = d.transforms
    assert isinstance(mb, MinibatchFeatures) and mb.T.shape == (d.feature_dim, 7, 3)
    assert d.head.in_features == d.feature_dim + 7 and d.head.out_features == 1
    V0 = mb.V.detach().clone()
    trained = t.opt_d.param_groups[0]["params"]
    assert any(p is mb.V for p in trained) and any(p is mb.log_scale for p in trained)
    t.fit()
    assert not torch.equal(V0, mb.V)


def test_minibatch_weight_norm_and_data_init_as_the_authors():
    torch.manual_seed(0)
    head = MinibatchFeatures(in_features=6, kernels=3, kernel_dim=2, init_std=0.05)
    # T's columns (over the input axis) have norm exp(log_scale): 1 at the start.
    torch.testing.assert_close(head.T.norm(dim=0), torch.ones(3, 2))
    h = torch.randn(10, 6) * 4
    head.initialise(h)
    torch.testing.assert_close(head.T.norm(dim=0), head.log_scale.exp())
    # After the data init each example's nearest other example is at mean L1 distance 2 ...
    m = torch.einsum("na,abc->bnc", h, head.T)
    dist = torch.cdist(m, m, p=1.0) + torch.eye(10) * 1e6
    torch.testing.assert_close(dist.min(2).values.mean(1), torch.full((3,), 2.0))
    # ... and o(x) + bias has mean 0 over the batch, with j = i left out.
    torch.testing.assert_close(head.minibatch(h).mean(0), torch.zeros(3), atol=1e-6, rtol=0)
    o = torch.exp(-(dist - torch.eye(10) * 1e6)).sum(2).T - 1
    torch.testing.assert_close(head.minibatch(h), o + head.bias)
    # A plain T (weight_norm=False) is rescaled itself to the same nearest distance.
    plain = MinibatchFeatures(
        in_features=6, kernels=3, kernel_dim=2, init_std=0.5, weight_norm=False
    )
    plain.initialise(h)
    m = torch.einsum("na,abc->bnc", h, plain.T)
    dist = torch.cdist(m, m, p=1.0) + torch.eye(10) * 1e6
    torch.testing.assert_close(dist.min(2).values.mean(1), torch.full((3,), 2.0))


def test_minibatch_projection_reads_a_learned_projection_of_the_features():
    """With project = P, o is the paper's formula on p = f·W (W weight-normalised per
    column), T is P × B × C, and the head still sees cat(f, o)."""
    torch.manual_seed(0)
    head = MinibatchFeatures(in_features=6, kernels=3, kernel_dim=2, init_std=0.05, project=4)
    assert head.T.shape == (4, 3, 2) and head.W.shape == (6, 4)
    h = torch.randn(10, 6) * 4
    head.initialise(h)
    w = head.W * (head.log_scale_w.exp() / head.W.norm(dim=0))
    torch.testing.assert_close(w.norm(dim=0), torch.ones(4))  # unit columns at the start
    p = h @ w
    out = head(h)
    torch.testing.assert_close(out[:, :6], h)
    expected = minibatch_features(p, head.T, exclude_self=True) + head.bias
    torch.testing.assert_close(out[:, 6:], expected)
    # The data init reads the projection: nearest other example at mean L1 distance 2.
    m = torch.einsum("na,abc->bnc", p, head.T)
    dist = torch.cdist(m, m, p=1.0) + torch.eye(10) * 1e6
    torch.testing.assert_close(dist.min(2).values.mean(1), torch.full((3,), 2.0))
    # Without weight norm W is a plain matrix.
    plain = MinibatchFeatures(6, 3, 2, init_std=0.5, weight_norm=False, project=4)
    assert not hasattr(plain, "log_scale_w")
    torch.testing.assert_close(
        plain.minibatch(h), minibatch_features(h @ plain.W, plain.V, exclude_self=True)
    )


def test_minibatch_size_defaults_per_model(tiny):
    """Unset, B x C is 5 x 3 on dcgan (the measured grid) and the paper's 100 x 5 on the
    authors' models; either option given wins, the other keeps the model's default."""
    for model, options, size in (
        ("dcgan", {}, (5, 3)),
        ("dcgan", {"kernels": 20}, (20, 3)),
        ("improved-gan-mlp", {}, (100, 5)),
        ("improved-gan-mlp", {"kernel_dim": 2}, (100, 2)),
    ):
        t, _ = prepare(
            {**tiny, "steps": 1, "model": model, "minibatch": options},
            plugins=[*QUIET, "minibatch"],
        )
        (mb,) = t.discriminator.transforms
        assert tuple(mb.T.shape[1:]) == size, (model, options)


def test_minibatch_project_option_builds_and_trains(tiny):
    t, _ = prepare(
        {**tiny, "steps": 2, "minibatch": {"kernels": 5, "kernel_dim": 3, "project": 16}},
        plugins=[*QUIET, "minibatch"],
    )
    d = t.discriminator
    (mb,) = d.transforms
    assert mb.T.shape == (16, 5, 3) and mb.W.shape == (d.feature_dim, 16)
    assert d.head.in_features == d.feature_dim + 5
    trained = t.opt_d.param_groups[0]["params"]
    assert any(p is mb.W for p in trained) and any(p is mb.log_scale_w for p in trained)
    W0 = mb.W.detach().clone()
    t.fit()
    assert not torch.equal(W0, mb.W)


# --------------------------------------------------------------- historical averaging
def test_running_mean_and_penalty_gradient():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    avg = RunningMean([p])
    history = [p.detach().clone()]
    for value in ([3.0, 0.0], [2.0, 2.0], [-1.0, 5.0]):
        with torch.no_grad():
            p.copy_(torch.tensor(value))
        avg.update()
        history.append(p.detach().clone())
    mean = torch.stack(history).mean(0)
    torch.testing.assert_close(avg.means[0], mean)
    lam = 0.3
    (lam * avg.penalty()).backward()
    torch.testing.assert_close(p.grad, 2 * lam * (p.detach() - mean))
    torch.testing.assert_close(avg.penalty(), (p - mean).square().sum())


def test_historical_averaging_in_training(tiny):
    params_seen, d_seen = [], []

    class Record:
        @hookimpl(trylast=True)
        def gantricks_after_generator_step(self, trainer):
            params_seen.append([p.detach().clone() for p in trainer.generator.parameters()])

        @hookimpl(trylast=True)
        def gantricks_after_discriminator_step(self, trainer):
            d_seen.append([p.detach().clone() for p in trainer.discriminator.parameters()])

    spy = Spy()
    opts = {**tiny, "steps": 3, "historical_averaging": {"weight_g": 0.5, "weight_d": 2.0}}
    t, _ = prepare(
        opts,
        plugins=[*QUIET, "historical_averaging"],
        extra_plugins=[(Record(), "rec"), (spy, "spy")],
    )
    init = [p.detach().clone() for p in t.generator.parameters()]
    init_d = [p.detach().clone() for p in t.discriminator.parameters()]
    t.fit()
    plugin = t.plugins.plugins["historical_averaging"].obj
    g_avg = plugin.avg["generator"]
    assert g_avg.count == 4  # initial parameters + one record per step
    for k, m in enumerate(g_avg.means):
        expected = torch.stack([init[k], *[s[k] for s in params_seen]]).mean(0)
        torch.testing.assert_close(m, expected)

    # The last step's penalties, λ·Σ‖θ − mean‖², each player with its own λ: θ is the
    # player's parameters before that step's update, the mean is over θ₁ and the two
    # steps before it.
    def penalty(history, lam):
        mean = [torch.stack(ps).mean(0) for ps in zip(*history, strict=True)]
        return lam * sum((p - m).square().sum() for p, m in zip(history[-1], mean, strict=True))

    torch.testing.assert_close(spy.g["hist_avg"], penalty([init, *params_seen[:2]], 0.5))
    torch.testing.assert_close(spy.d["hist_avg"], penalty([init_d, *d_seen[:2]], 2.0))


@pytest.mark.parametrize(
    "order",
    [["minibatch", "historical_averaging"], ["historical_averaging", "minibatch"]],
)
def test_historical_average_starts_from_initialised_weights(tiny, order):
    # Minibatch discrimination sets D's head from data at train start; the average must
    # start from those weights (penalty exactly 0 at the first step), whatever the order.
    spy = Spy()
    t, _ = prepare({**tiny, "steps": 1}, plugins=[*QUIET, *order], extra_plugins=[(spy, "spy")])
    t.fit()
    assert spy.d["hist_avg"].item() == 0.0
    assert spy.g["hist_avg"].item() == 0.0


def test_minibatch_initialises_after_vbn_reference(tiny):
    # With D's batch norm virtual, the minibatch features are initialised from D's features
    # of real images, which need the reference batch in place: the order must not matter.
    heads = []
    for order in (["virtual_batchnorm", "minibatch"], ["minibatch", "virtual_batchnorm"]):
        opts = {**tiny, "steps": 1, "virtual_batchnorm": {"discriminator": True}}
        t, _ = prepare({**opts, "name": "-".join(order)}, plugins=[*QUIET, *order])
        t.hook.gantricks_train_start(trainer=t)
        d = t.discriminator
        heads.append({k: v.clone() for k, v in d.transforms.state_dict().items()})
    for k in heads[0]:
        torch.testing.assert_close(heads[0][k], heads[1][k], msg=k)


# ------------------------------------------------------------------ virtual batch norm
def test_vbn_matches_formula():
    torch.manual_seed(0)
    n, b, ch = 3, 2, 4
    x = torch.randn(n + b, ch, 2, 2)
    vbn = VirtualBatchNorm2d(ch, ref_size=n, eps=1e-5)
    with torch.no_grad():
        vbn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
        vbn.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    out = vbn(x)
    ref = x[:n]
    mu_r = ref.mean((0, 2, 3))
    sq_r = (ref**2).mean((0, 2, 3))
    for i in range(n, n + b):
        mu = mu_r * n / (n + 1) + x[i].mean((1, 2)) / (n + 1)
        sq = sq_r * n / (n + 1) + (x[i] ** 2).mean((1, 2)) / (n + 1)
        std = torch.sqrt(sq - mu**2 + 1e-5)
        expected = (x[i] - mu[:, None, None]) / std[:, None, None]
        expected = expected * vbn.weight[:, None, None] + vbn.bias[:, None, None]
        torch.testing.assert_close(out[i], expected)
    # The reference rows use the reference statistics alone.
    std_r = torch.sqrt(sq_r - mu_r**2 + 1e-5)
    expected_ref = (ref - mu_r[:, None, None]) / std_r[:, None, None]
    expected_ref = expected_ref * vbn.weight[:, None, None] + vbn.bias[:, None, None]
    torch.testing.assert_close(out[:n], expected_ref)


def test_vbn_statistics_hold_in_bf16_far_from_zero():
    # E[h²] − μ² in bf16 cancels to garbage (or below zero: NaN) once |μ| ≫ σ; the layer
    # computes its statistics centred and in fp32, so bf16 input only costs bf16 rounding.
    torch.manual_seed(0)
    vbn = VirtualBatchNorm2d(64, ref_size=8)
    for shift in (4.0, 16.0, 64.0):
        x = (torch.randn(12, 64, 4, 4) + shift).bfloat16()
        exact = vbn(x.float())  # the same (rounded) input in fp32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = vbn(x)
        assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
        # Only the output's rounding is left: outputs within ±4 carry bf16 steps ≤ 1/64.
        assert (low.float() - exact).abs().max() < 0.04, shift


def test_vbn_generator_example_independent_of_batch(tiny):
    t, _ = prepare({**tiny, "steps": 1}, plugins=[*QUIET, "virtual_batchnorm"])
    G = t.generator
    assert isinstance(G, WithReference)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules())
    z = torch.randn(6, tiny["nz"])
    with torch.no_grad():
        alone = G(z[:1])
        together = G(z)
        other = G(torch.cat([z[:1], torch.randn(9, tiny["nz"]) * 3]))
    torch.testing.assert_close(together[:1], alone)
    torch.testing.assert_close(other[:1], alone)
    # Plain batch norm lacks this property.
    plain, _ = prepare({**tiny, "steps": 1, "name": "plain"}, plugins=QUIET)
    with torch.no_grad():
        a, b = plain.generator(z[:2]), plain.generator(z)
    assert not torch.allclose(a[:1], b[:1])


def test_vbn_gradients_flow_through_reference(tiny):
    t, _ = prepare({**tiny, "steps": 1}, plugins=[*QUIET, "virtual_batchnorm"])
    G = t.generator
    vbn = next(m for m in G.modules() if isinstance(m, VirtualBatchNorm2d))
    captured = {}
    vbn.register_forward_hook(lambda m, a, o: captured.setdefault("in", a[0]))
    z = torch.randn(2, tiny["nz"])
    out = G(z)
    x = captured["in"]
    x.retain_grad()
    out.sum().backward()
    # Reference rows influence the examples only through the statistics, so a nonzero
    # gradient on them proves gradients flow through the reference statistics.
    assert x.grad[: vbn.ref_size].abs().sum() > 0


def test_vbn_reference_saved_and_used_for_sampling(tiny):
    t, _ = prepare(
        {**tiny, "steps": 2, "virtual_batchnorm": {"reference_size": 8, "discriminator": True}},
        plugins=[*QUIET, "virtual_batchnorm"],
    )
    t.fit()
    ref = t.generator.reference.clone()
    assert ref.shape == (8, tiny["nz"])
    d_ref = t.discriminator.features.reference
    assert d_ref.abs().sum() > 0 and d_ref.min() >= -1 and d_ref.max() <= 1
    models, _, _ = load_models(t.run_dir, device="cpu")
    torch.testing.assert_close(models.generator.reference, ref)
    z = torch.randn(3, tiny["nz"])
    with torch.no_grad():
        torch.testing.assert_close(models.generator(z), t.generator(z))


# ------------------------------------------------------------------ together, resumed
def _weights(trainer):
    return [*trainer.generator.state_dict().values(), *trainer.discriminator.state_dict().values()]


@pytest.mark.parametrize("plugin", TRICKS)
def test_each_trick_runs_alone_and_resumes_exactly(tiny, plugin):
    full, _ = prepare({**tiny, "steps": 4, "name": "full"}, plugins=[*QUIET, plugin])
    full.fit()
    half, _ = prepare({**tiny, "steps": 2, "name": "half"}, plugins=[*QUIET, plugin])
    half.fit()
    resumed, ckpt = prepare({"steps": 4}, resume=half.run_dir)
    assert plugin in resumed.plugins.plugins
    resumed.fit(resume=ckpt)
    for a, b in zip(_weights(full), _weights(resumed), strict=True):
        assert torch.equal(a, b)
    rows = [json.loads(x) for x in (full.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss_g"])) for r in rows)


def test_all_five_together_resume_exactly(tiny):
    opts = {**tiny, "virtual_batchnorm": {"discriminator": True, "reference_size": 8}}
    full, _ = prepare({**opts, "steps": 4, "name": "full"}, plugins=[*QUIET, *TRICKS])
    full.fit()
    half, _ = prepare({**opts, "steps": 2, "name": "half"}, plugins=[*QUIET, *TRICKS])
    half.fit()
    resumed, ckpt = prepare({"steps": 4}, resume=half.run_dir)
    resumed.fit(resume=ckpt)
    for a, b in zip(_weights(full), _weights(resumed), strict=True):
        assert torch.equal(a, b)
    ha_full = full.plugins.plugins["historical_averaging"].obj.avg["discriminator"]
    ha_res = resumed.plugins.plugins["historical_averaging"].obj.avg["discriminator"]
    assert ha_full.count == ha_res.count == 5
    for a, b in zip(ha_full.means, ha_res.means, strict=True):
        assert torch.equal(a, b)
    last = full.last_scalars
    assert {"loss_g/feature_matching", "loss_g/hist_avg", "loss_d/hist_avg"} <= set(last)
    assert "loss_g/adv" not in last


@pytest.mark.skipif(not mnist_available(), reason="shared MNIST not present")
def test_all_five_on_mnist(tiny):
    t, _ = prepare(
        {**tiny, "dataset": "mnist", "data_dir": str(SHARED_DATA), "download": False, "steps": 3},
        plugins=[*QUIET, *TRICKS],
    )
    scalars = t.fit()
    assert all(torch.isfinite(torch.tensor(v)) for v in scalars.values())
