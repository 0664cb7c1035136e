"""Latent-space tools of the DCGAN paper: interpolation, vector arithmetic, nearest neighbours.

Radford et al. (2015), section 6: walking the latent space (figure 4), vector arithmetic on
averaged z (figure 7), and the memorisation check of nearest training images.

Batch norm makes a DCGAN's output for one z depend on the rest of its batch. Rows of an
interpolation or a handful of arithmetic results are far from a typical batch (their z are
close to each other), so every image here is generated beside a fixed *context* of random
z that sets the batch statistics, and only the requested images are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import tomllib
import torch
from torch import nn

from gantricks.data import to_float
from gantricks.errors import GantricksError
from gantricks.sampling import batch_statistics, feature_mode, fixed_noise

#: Random z generated beside the requested ones, so batch norm sees typical statistics.
CONTEXT = 256


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 − t)·a + t·b for each t: (len(t), nz)."""
    t = t.view(-1, 1)
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (White 2016): sin((1−t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b, with
    Ω the angle between a and b; falls back to lerp where a and b are (anti)parallel."""
    t = t.view(-1, 1)
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6 or (math.pi - omega).abs() < 1e-6:
        return lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@torch.no_grad()
def render(
    generator: nn.Module, z: torch.Tensor, context_seed: int = 12345, kind: str = "normal"
) -> torch.Tensor:
    """Images for ``z``, each generated beside the same :data:`CONTEXT` random vectors
    (drawn from the run's latent distribution ``kind``)."""
    device = z.device
    context = fixed_noise(CONTEXT, z.shape[1], context_seed, device, kind)
    out = []
    with batch_statistics(generator):
        for chunk in z.split(CONTEXT):
            out.append(generator(torch.cat([context, chunk]))[CONTEXT:])
    return torch.cat(out)


def interpolation_z(
    nz: int, pairs: int, steps: int, seed: int, kind: str = "normal"
) -> torch.Tensor:
    """For each of ``pairs`` random (a, b): a linear row, then a spherical row, of ``steps``."""
    ends = fixed_noise(2 * pairs, nz, seed, kind=kind)
    t = torch.linspace(0, 1, steps)
    rows = []
    for i in range(pairs):
        a, b = ends[2 * i], ends[2 * i + 1]
        rows += [lerp(a, b, t), slerp(a, b, t)]
    return torch.cat(rows)


@dataclass
class Arithmetic:
    """A vector-arithmetic request: named groups of sample indices and an expression."""

    seed: int
    n: int
    groups: dict[str, list[int]]
    terms: list[tuple[float, str]]  # (+1 or −1, group name)
    expression: str

    @classmethod
    def from_toml(cls, path: str | Path) -> Arithmetic:
        """Read the TOML file that ``gantricks arithmetic --indices`` takes.

        ``seed`` and ``n`` name the grid of ``gantricks sample --seed SEED --n N`` whose
        images the indices (0-based, row by row) point at; ``expression`` combines the
        groups of ``[groups]`` with + and −.
        """
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise GantricksError(f"arithmetic file {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise GantricksError(f"arithmetic file {str(path)!r} is not valid TOML: {e}") from None
        missing = [k for k in ("expression", "groups") if k not in raw]
        if missing:
            raise GantricksError(
                f"arithmetic file {str(path)!r} lacks {', '.join(missing)}; it needs seed, n, "
                'expression (e.g. "smiling_woman - neutral_woman + neutral_man") and a '
                "[groups] table of sample indices"
            )
        n = int(raw.get("n", 64))
        groups = {str(k): [int(i) for i in v] for k, v in raw["groups"].items()}
        for name in groups:
            if not name.replace("_", "a").isalnum():
                raise GantricksError(
                    f"arithmetic group name {name!r}: use letters, digits and underscores "
                    "(+ and - belong to the expression)"
                )
        for name, idx in groups.items():
            bad = [i for i in idx if not 0 <= i < n]
            if not idx or bad:
                raise GantricksError(
                    f"arithmetic group {name!r} has indices {bad or idx}; allowed: a non-empty "
                    f"list of 0..{n - 1} (positions in the grid of n={n} samples)"
                )
        expression = str(raw["expression"])
        terms = parse_expression(expression, set(groups))
        return cls(int(raw.get("seed", 0)), n, groups, terms, expression)


def parse_expression(expression: str, names: set[str]) -> list[tuple[float, str]]:
    """ "a - b + c" → [(1, a), (−1, b), (1, c)]; every name must be a group."""
    tokens = expression.replace("+", " + ").replace("-", " - ").split()
    terms: list[tuple[float, str]] = []
    sign = 1.0
    expect_name = True
    for tok in tokens:
        if tok in "+-":
            if expect_name and terms:
                raise GantricksError(f"arithmetic expression {expression!r}: two signs in a row")
            sign = 1.0 if tok == "+" else -1.0
            expect_name = True
            continue
        if tok not in names:
            raise GantricksError(
                f"arithmetic expression {expression!r} names {tok!r}, which is not a group; "
                f"allowed: {', '.join(sorted(names))}"
            )
        if not expect_name:
            raise GantricksError(
                f"arithmetic expression {expression!r}: missing + or − before {tok!r}"
            )
        terms.append((sign, tok))
        sign, expect_name = 1.0, False
    if not terms or expect_name:
        raise GantricksError(f"arithmetic expression {expression!r} is incomplete")
    return terms


def arithmetic_z(
    request: Arithmetic, nz: int, variations: int = 8, noise: float = 0.25, kind: str = "normal"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(exemplar z per group, stacked; each group's mean z; result z and ``variations``
    copies with uniform noise in ±``noise`` added, as DCGAN figure 7)."""
    z = fixed_noise(request.n, nz, request.seed, kind=kind)
    exemplars = torch.cat([z[request.groups[name]] for _, name in request.terms])
    means = torch.stack([z[request.groups[name]].mean(0) for _, name in request.terms])
    signs = torch.tensor([s for s, _ in request.terms]).view(-1, 1)
    result = (signs * means).sum(0)
    gen = torch.Generator().manual_seed(request.seed + 1)
    jitter = (torch.rand(variations - 1, nz, generator=gen) * 2 - 1) * noise
    results = torch.cat([result.unsqueeze(0), result + jitter])
    return exemplars, means, results


@torch.no_grad()
def discriminator_features(
    discriminator: nn.Module,
    images: torch.Tensor,
    batch_size: int = 500,
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """D's trunk features of float images, batch by batch, with batch norm on batch
    statistics (as D sees real batches in training) and any noise or dropout off; D is left
    unchanged. With ``context`` (real images), every batch is ``context`` plus up to
    ``batch_size`` images, so a few images get the statistics of a real batch."""
    out = []
    with feature_mode(discriminator):
        for chunk in images.split(batch_size):
            if context is not None:
                chunk = torch.cat([context, chunk])
            _, h = discriminator(chunk)
            h = h[len(context) :] if context is not None else h
            out.append(h.flatten(1).float())
    return torch.cat(out)


@torch.no_grad()
def nearest(queries: torch.Tensor, pool: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Indices (len(queries), k) of the ``k`` nearest rows of ``pool`` in Euclidean distance."""
    if not 0 < k <= len(pool):
        raise GantricksError(f"--k {k}: allowed 1..{len(pool)} (the images searched)")
    best_d = torch.full((len(queries), k), math.inf, device=queries.device)
    best_i = torch.zeros((len(queries), k), dtype=torch.long, device=queries.device)
    for start in range(0, len(pool), chunk):
        d = torch.cdist(queries, pool[start : start + chunk])
        cand_d = torch.cat([best_d, d], 1)
        cand_i = torch.cat(
            [best_i, torch.arange(start, start + d.shape[1], device=queries.device).expand_as(d)],
            1,
        )
        best_d, order = cand_d.topk(k, dim=1, largest=False)
        best_i = cand_i.gather(1, order)
    return best_i


def nearest_rows(
    samples: torch.Tensor,
    train_uint8: torch.Tensor,
    discriminator: nn.Module,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each sample: a row of the sample, its k nearest training images in pixels, then
    the k nearest in D-feature space. Returns (rows (n·(2k+1), C, H, W), pixel indices,
    feature indices)."""
    device = samples.device
    train = train_uint8.to(device)
    train_f = to_float(train)  # one float copy of the pool serves both searches
    pix = nearest(samples.flatten(1), train_f.flatten(1), k)
    feats_train = discriminator_features(discriminator, train_f)
    # The samples' batch statistics come from a batch of real images, as for the pool.
    context = train_f[:500]
    feats_samples = discriminator_features(discriminator, samples, context=context)
    feat = nearest(feats_samples, feats_train, k)
    rows = []
    for i in range(len(samples)):
        rows += [samples[i : i + 1], to_float(train[pix[i]]), to_float(train[feat[i]])]
    return torch.cat(rows), pix, feat
