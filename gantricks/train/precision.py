"""Whether bf16 pays on this CPU: a short probe of a training step in both precisions.

bf16 autocast on a CPU is fast where oneDNN has bf16 convolution kernels for the layer
shapes at hand and slow where it falls back to reference code; the CPU's flags
(``avx512_bf16``, ``amx_bf16``) do not tell which. Measured: 1.5x faster than fp32 on one
2-core AVX-512 BF16 machine, about at par on another; reported 14x slower on a third that
lists the same flags (see benchmarks/RESULTS.md). So before a CPU run in bf16,
:func:`check_bf16` times a few training steps of copies of the run's players in both
precisions (after warm-up steps, which are slow in bf16 while kernels are made) and warns,
with both times, when bf16 is the slower (by more than 10 %, a margin for timing noise).
The run itself is untouched: its players, optimisers, data order and torch's global random
state are as they were. ``--set bf16_probe=false`` skips the probe.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from gantricks.data import to_float
from gantricks.sampling import isolated_rng

#: The probe's batch: at most this many images (a step's time scales with the batch).
PROBE_BATCH = 16
#: Warm-up steps per precision (bf16's first steps make their kernels), then timed steps
#: in turns until this many of each are done or the time budget is spent (one at least).
WARMUP, TIMED, BUDGET_S = 2, 4, 2.0
#: bf16 is reported as slower when its fastest step takes this much longer than fp32's: a
#: margin for timing noise (the slowdowns seen are several-fold).
SLOWER = 1.1
_measured: dict[tuple[Any, ...], tuple[float, float]] = {}


def _make_step(trainer: Any, bf16: bool, batch: int) -> Callable[[], None]:
    """A D+G update like the run's (its players and layout, ``batch`` images) on copies of
    its players, with their own Adam optimisers."""
    c = trainer.config
    g = copy.deepcopy(trainer.models.generator)
    d = copy.deepcopy(trainer.models.discriminator)
    opt_g = torch.optim.Adam(g.parameters(), lr=c.lr_g, betas=(c.beta1, c.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=c.lr_d, betas=(c.beta1, c.beta2))
    real = to_float(trainer.data.images[:batch]).to(trainer.device)
    if c.channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    z = torch.randn(real.shape[0], c.nz, generator=torch.Generator().manual_seed(0))
    autocast = torch.autocast("cpu", torch.bfloat16, enabled=bf16)

    def step() -> None:
        with autocast:
            fake = g(z)
            real_logits, fake_logits = d(real)[0], d(fake.detach())[0]
        loss_d = F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast:
            loss_g = F.softplus(-d(fake)[0].float()).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step


def _fastest_ms(times: list[float]) -> float:
    # The fastest step, not the median: other processes on the machine only ever add time,
    # and on a busy 2-core machine one step in three can take several times the others.
    return min(times) * 1e3


def _measure(trainer: Any, batch: int) -> tuple[float, float]:
    """Warm-up steps in each precision, then timed steps taken in turns (so a change in
    the machine's load hits both alike) until :data:`TIMED` each or the time budget."""
    steps = {False: _make_step(trainer, False, batch), True: _make_step(trainer, True, batch)}
    for step in steps.values():
        for _ in range(WARMUP):
            step()
    times: dict[bool, list[float]] = {False: [], True: []}
    start = time.perf_counter()
    while len(times[True]) < TIMED and (not times[True] or time.perf_counter() - start < BUDGET_S):
        for bf16, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[bf16].append(time.perf_counter() - t0)
    return _fastest_ms(times[False]), _fastest_ms(times[True])


def probe_bf16(trainer: Any) -> tuple[float, float]:
    """(fp32 ms, bf16 ms): the fastest training step at the probe's batch in each
    precision, measured once per process for a given model shape and thread count."""
    c = trainer.config
    batch = min(c.batch_size, PROBE_BATCH, len(trainer.data))
    key = (
        tuple(c.plugins),
        trainer.data.image_size,
        trainer.data.channels,
        c.nz,
        c.ngf,
        c.ndf,
        batch,
        c.channels_last,
        torch.get_num_threads(),
    )
    if key not in _measured:
        with isolated_rng():  # dropout, noise layers, lazy inits: not the run's stream
            _measured[key] = _measure(trainer, batch)
    return _measured[key]


def check_bf16(trainer: Any) -> tuple[float, float] | None:
    """Before a CPU run in bf16 (with ``bf16_probe``): warn when bf16 is slower than fp32
    here (by more than :data:`SLOWER`). Returns the two times, or ``None`` when not
    probed."""
    c = trainer.config
    if c.precision != "bf16" or trainer.device.type != "cpu" or not c.bf16_probe:
        return None
    try:
        fp32, bf16 = probe_bf16(trainer)
    except Exception as e:  # a player the plain step does not fit: train, do not guess
        warnings.warn(
            f"bf16_probe: could not time a training step ({type(e).__name__}: {e}); "
            "whether bf16 is faster than fp32 on this CPU was not checked",
            stacklevel=2,
        )
        return None
    if bf16 > SLOWER * fp32:
        warnings.warn(
            f"bf16 is slower than fp32 on this CPU ({bf16:.0f} ms vs {fp32:.0f} ms per "
            f"training step at batch {min(c.batch_size, PROBE_BATCH)}, measured just now); "
            "--set precision=fp32 trains faster here (--set bf16_probe=false skips this check)",
            stacklevel=2,
        )
    return fp32, bf16
