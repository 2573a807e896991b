"""Benchmark histories with known steps: simulated noise of the kinds real machines show, and the
repository's real series with a planted step.

A history is ``(samples, truth)``: ``samples[i]`` the samples (ms around 10 ms, larger = slower) of
commit ``i`` or ``None`` when it was not measured; ``truth`` the planted boundaries as
``(index of the first commit at the new level, "slower" | "faster")``.

Noise is multiplicative (lognormal): per commit one offset shared by all its samples (a whole run
shifted: the dominant noise on the project's machines), per sample a within-run factor, optional
slow outliers (a sample ``outlier_factor`` times slower), a linear drift over the history, commits
left unmeasured. Samples per commit follow what the quick profile stores on the 2-core CPU machine
(``asv`` ``stats_repeat`` over ``results/cpu-amd-epyc-2c``: 1 sample 7 %, 2 samples 21 %, 3 samples 72 %).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["Scenario", "History", "GRID", "QUICK_PROFILE_COUNTS", "simulate", "null_of", "plant_step"]

# (samples per commit, probability): the quick profile's stored repeats on the CPU machine.
QUICK_PROFILE_COUNTS: tuple[tuple[int, float], ...] = ((1, 0.07), (2, 0.21), (3, 0.72))

Truth = list[tuple[int, str]]


@dataclass(frozen=True)
class History:
    samples: list[Optional[list[float]]]
    truth: Truth


@dataclass(frozen=True)
class Scenario:
    """One row of the evaluation grid.

    ``step``: factor at the step (1.0: none); ``back_after``: commits after which the level returns
    (an excursion: two boundaries), None for a lasting step; the step lands uniformly on commits
    ``first_step..last_step`` (0-based, first commit at the new level).
    """

    name: str
    offset_cv: float = 0.02
    within_cv: float = 0.03
    step: float = 1.0
    back_after: Optional[int] = None
    outlier_rate: float = 0.0
    outlier_factor: float = 3.0
    drift: float = 0.0  # total relative change over the history, linear in the commit index
    missing: float = 0.0  # probability that a commit has no samples
    counts: tuple[tuple[int, float], ...] = QUICK_PROFILE_COUNTS
    commits: int = 20
    first_step: int = 5
    last_step: int = 16
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def planted(self) -> bool:
        return self.step != 1.0


def _lognormal_sigma(cv: float) -> float:
    return math.sqrt(math.log1p(cv * cv))


def simulate(scenario: Scenario, rng: np.random.Generator) -> History:
    """One history of ``scenario``."""
    n = scenario.commits
    sizes, weights = zip(*scenario.counts)
    counts = rng.choice(np.array(sizes), size=n, p=np.array(weights) / sum(weights))
    level = np.zeros(n)
    truth: Truth = []
    if scenario.planted:
        last = scenario.last_step if scenario.back_after is None else min(
            scenario.last_step, n - 1 - scenario.back_after)
        at = int(rng.integers(scenario.first_step, last + 1))
        level[at:] += math.log(scenario.step)
        truth.append((at, "slower" if scenario.step > 1 else "faster"))
        if scenario.back_after is not None:
            back = at + scenario.back_after
            level[back:] -= math.log(scenario.step)
            truth.append((back, "faster" if scenario.step > 1 else "slower"))
    if scenario.drift:
        level += math.log1p(scenario.drift) * np.arange(n) / (n - 1)
    level += rng.normal(0.0, _lognormal_sigma(scenario.offset_cv), n) if scenario.offset_cv else 0.0
    within = _lognormal_sigma(scenario.within_cv)
    measured = rng.random(n) >= scenario.missing
    samples: list[Optional[list[float]]] = []
    for i in range(n):
        if not measured[i]:
            samples.append(None)
            continue
        x = level[i] + rng.normal(0.0, within, counts[i])
        slow = rng.random(counts[i]) < scenario.outlier_rate
        x = x + np.where(slow, math.log(scenario.outlier_factor), 0.0)
        samples.append((10.0 * np.exp(x)).tolist())
    return History(samples, truth)


def null_of(scenario: Scenario) -> Scenario:
    """The same noise without the step (the histories a false-flag rate is measured on)."""
    return Scenario(scenario.name + " (no step)", scenario.offset_cv, scenario.within_cv, 1.0, None,
                    scenario.outlier_rate, scenario.outlier_factor, scenario.drift, scenario.missing,
                    scenario.counts, scenario.commits, scenario.first_step, scenario.last_step)


def plant_step(values: list[Optional[float]], factor: float, rng: np.random.Generator,
               margin: int = 3) -> History:
    """A real series (one value per commit, larger = slower; None = not measured) with every commit
    from a random index on multiplied by ``factor``; at least ``margin`` measured commits on each side."""
    present = [i for i, v in enumerate(values) if v is not None]
    if len(present) < 2 * margin:
        raise ValueError(f"a series needs {2 * margin} measured commits to plant a step, has {len(present)}")
    at = present[int(rng.integers(margin, len(present) - margin + 1))]
    samples = [None if v is None else [v * (factor if i >= at else 1.0)] for i, v in enumerate(values)]
    return History(samples, [(at, "slower" if factor > 1 else "faster")])


# The evaluation grid: every row of the independent comparison this detector was measured
# against, plus wider noise. Offsets are per commit (whole runs), "within" per sample.
GRID: tuple[Scenario, ...] = (
    Scenario("offset 5% + 3% within, 1.3x step", offset_cv=0.05, step=1.3),
    Scenario("offset 2% + 3% within, 1.1x step", offset_cv=0.02, step=1.1),
    Scenario("offset 5% + 3% within, 1.1x step", offset_cv=0.05, step=1.1),
    Scenario("offset 10% + 3% within, 1.3x step", offset_cv=0.10, step=1.3),
    Scenario("offset 10% + 3% within, 2x step", offset_cv=0.10, step=2.0),
    Scenario("no offset, 10% within, 1.1x step", offset_cv=0.0, within_cv=0.10, step=1.1),
    Scenario("5% of samples 3x (outliers), offset 2%, 1.3x step", outlier_rate=0.05, step=1.3),
    Scenario("10% of samples 3x, offset 5%, 1.3x step", offset_cv=0.05, outlier_rate=0.10, step=1.3),
    Scenario("10% linear drift over 20 commits, offset 2%, 1.3x step", drift=0.10, step=1.3),
    Scenario("20% linear drift over 20 commits, offset 2%, 1.3x step", drift=0.20, step=1.3),
    Scenario("1.2x up, back down 6 commits later, offset 2%", step=1.2, back_after=6),
    Scenario("1.2x up, back down 3 commits later, offset 2%", step=1.2, back_after=3),
    Scenario("30% commits missing, 1-2 samples, offset 5%, 1.3x", offset_cv=0.05, step=1.3, missing=0.3,
             counts=((1, 0.5), (2, 0.5))),
    Scenario("50 commits, offset 5% + 3%, 1.3x step", offset_cv=0.05, step=1.3, commits=50,
             first_step=5, last_step=46),
)
