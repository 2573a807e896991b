"""Find the commits where a benchmark got slower (or faster), using every sample of every commit.

asv's own step detection (what ``asv publish`` shows) sees one number per commit. Here each commit
contributes all its samples (times in ms, memory in MiB: any positive quantity where larger means
"slower"), and a boundary is only reported when a test that knows how noisy one commit is says the
two sides differ, after correcting for the number of boundaries tried. The method, its measured
rates and its limits are in ``docs/detection.md``; ``python -m tools.simulate`` compares it with asv.

Method in short (binary segmentation):

1. Per commit, a robust level: the mean of its log-samples after clipping samples beyond 2.5 robust sd
   of the commit's median (outliers bounded, bimodal modes kept).
2. Noise model ``Var(level_c) = tau2 + w2 / n_c``: ``w2`` is the pooled within-commit variance,
   ``tau2`` the extra variance of whole commits (a run shifted as a whole), estimated from the median
   of squared successive differences of levels, which one or a few real steps barely move.
3. For every boundary, an inverse-variance weighted difference of mean levels right vs left, as a t
   statistic with Satterthwaite degrees of freedom (``tau2`` comes from few commits), Bonferroni-
   corrected by the number of boundaries in the history. Below ``alpha``: split, repeat on both sides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import numpy as np
from scipy import special, stats

# Median of a chi-square variable with 1 degree of freedom: squared N(0, s2) differences have
# median CHI2_1_MEDIAN * s2, which turns the median of squared differences into a variance.
CHI2_1_MEDIAN = float(stats.chi2.ppf(0.5, 1))
# Degrees of freedom a median-of-squares variance estimate is worth per difference: the median is
# ~37% efficient for Gaussian scale and successive differences overlap (correlation -0.5).
DF_PER_DIFFERENCE = 0.3
# Below this many successive differences tau2 is not estimable; the test then assumes samples are
# independent across commits (tau2 = 0). Documented as a limit.
MIN_DIFFERENCES_FOR_TAU = 4
# Samples further than this many robust sd from their commit's median are pulled back to it.
WINSOR_SD = 2.5

Direction = Literal["slower", "faster"]


@dataclass(frozen=True)
class Step:
    """One change point in a benchmark's history.

    ``index``: position (in the ``commits`` list given) of the first commit with the new level;
    ``before``/``after``: the last commit with data before the change and the first commit after it
    (commits without samples between them are unresolved: the change is somewhere in ``(before, after]``);
    ``ratio``: median of all samples in the segment after / median of the segment before (> 1: slower);
    ``p_value``: Bonferroni-corrected over the boundaries tried (None where the detector has none, e.g. asv);
    ``direction``: "slower" when ``ratio > 1`` else "faster".
    """

    index: int
    before: str
    after: str
    ratio: float
    p_value: Optional[float]
    direction: Direction


@dataclass(frozen=True)
class _Series:
    """Per commit with samples: where it is in the caller's list, its log-level, and its variance."""

    positions: np.ndarray  # index into the caller's commit list
    levels: np.ndarray  # winsorised mean of log(samples), one per commit
    variances: np.ndarray  # tau2 + w2 / n_c: variance of ``levels`` under "no change"
    df: float  # Satterthwaite degrees of freedom of ``variances``
    values: np.ndarray  # all raw samples, commit after commit (for the segment medians: ratios)
    offsets: np.ndarray  # values[offsets[c]:offsets[c + 1]] belong to commit c


def detect_steps(
    commits: list[str],
    samples: list[list[float]],
    alpha: float = 0.01,
    min_ratio: float = 1.0,
) -> list[Step]:
    """Change points in one benchmark's history, oldest commit first.

    ``samples[i]`` holds every sample (ms, MiB, ... larger = slower) measured at ``commits[i]``;
    ``None`` or ``[]`` means the commit was not measured. ``alpha`` bounds the chance of reporting
    anything on a history without a change (family-wise, per history). ``min_ratio`` drops steps
    smaller than that factor in either direction (1.05 keeps only >= 5% changes). Steps are
    returned in commit order.
    """
    _check_arguments(commits, samples, alpha, min_ratio)
    series = _series(samples)
    if series is None:
        return []
    found: dict[int, float] = {}  # boundary (first commit of the right side, 0..m) -> corrected p
    _segment(series, alpha, found)
    return _steps_from_boundaries(commits, series, found, min_ratio)


def asv_steps(
    commits: list[str],
    values: Sequence[Optional[float]],
    weights: Optional[Sequence[Optional[float]]] = None,
    min_ratio: float = 1.0,
) -> list[Step]:
    """asv 0.6's detector on one value per commit (``None``/NaN = missing), as ``Step`` objects.

    Slowdowns are what ``asv.step_detect.detect_regressions`` reports on ``asv.step_detect.detect_steps``;
    speed-ups are the same call on the mirrored series (asv itself does not list them).
    ``weights`` are asv's optional per-commit weights (``asv publish`` uses 2 / CI width).
    ``p_value`` is None: asv's detector has no significance level.
    """
    from asv import step_detect

    if len(commits) != len(values):
        raise ValueError(f"{len(commits)} commits but {len(values)} values")
    y = [None if v is None or not math.isfinite(v) else float(v) for v in values]
    fit = step_detect.detect_steps(y, None if weights is None else list(weights))
    if not fit:
        return []
    found: list[Step] = []
    for sign, direction in ((1.0, "slower"), (-1.0, "faster")):
        mirrored = [(left, right, sign * value, sign * low, err) for left, right, value, low, err in fit]
        _, _, regressions = step_detect.detect_regressions(mirrored)
        for before, after, value_before, best_after in regressions or []:
            if after is None:
                continue
            ratio = (sign * best_after) / (sign * value_before) if value_before else math.inf
            size = max(ratio, 1.0 / ratio) if ratio > 0 else math.inf
            if size >= min_ratio:
                found.append(Step(after, commits[before], commits[after], ratio, None, direction))
    return sorted(found, key=lambda step: step.index)


def _check_arguments(commits: list[str], samples: list[list[float]], alpha: float, min_ratio: float) -> None:
    if len(commits) != len(samples):
        raise ValueError(f"{len(commits)} commits but {len(samples)} sample lists")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not min_ratio >= 1.0:
        raise ValueError(f"min_ratio must be >= 1 (it applies to both directions), got {min_ratio}")


def _series(samples: list[list[float]]) -> Optional[_Series]:
    """Winsorised log-levels per commit and their variance; None when fewer than two commits have data."""
    values, counts, positions = _flatten(samples)
    if len(positions) < 2:
        return None
    m = len(positions)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    owner = np.repeat(np.arange(m), counts)
    logs = np.log(values)
    # Sorting by (commit, value) puts each commit's samples in order: medians without a Python loop.
    ordered = logs[np.lexsort((logs, owner))]
    centres = 0.5 * (ordered[offsets[:-1] + (counts - 1) // 2] + ordered[offsets[:-1] + counts // 2])
    residuals = logs - centres[owner]
    scale = _pooled_scale(residuals, (counts > 1)[owner])
    # Clip far samples (GC pauses, a busy core) to centre +- 2.5 robust sd: an outlier moves its
    # commit's level by at most 2.5 sd / n, while two modes of a bimodal benchmark stay untouched.
    clipped = np.clip(residuals, -WINSOR_SD * scale, WINSOR_SD * scale)
    shifts = np.bincount(owner, clipped, minlength=m) / counts
    levels = centres + shifts
    deviations = clipped - shifts[owner]
    df_within = float(len(values) - m)
    within = float(np.dot(deviations, deviations) / df_within) if df_within > 0 else 0.0
    tau2, df_between = _between_variance(levels, counts, within)
    variances = tau2 + within / counts
    df = _satterthwaite_df(tau2, within / counts.mean(), df_between, df_within)
    return _Series(positions, levels, variances, df, values, offsets)


def _flatten(samples: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all samples in commit order, samples per commit, caller's index per commit) for the commits
    that have samples."""
    present = [i for i, chunk in enumerate(samples) if chunk is not None and len(chunk) > 0]
    chunks = [samples[i] for i in present]
    try:
        values = np.concatenate([np.asarray(chunk, dtype=np.float64).ravel() for chunk in chunks]) if chunks else np.empty(0)
    except (TypeError, ValueError) as error:
        raise ValueError(f"samples must be lists of numbers (or None for a commit not measured): {error}") from None
    counts = np.array([len(chunk) for chunk in chunks], dtype=np.int64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        commit = present[int(np.searchsorted(np.cumsum(counts), int(np.argmax(bad)), side="right"))]
        raise ValueError(f"samples of commit #{commit} must be finite and > 0 (steps are ratios), got {list(samples[commit])}")
    return values, counts, np.array(present, dtype=np.int64)


def _pooled_scale(residuals: np.ndarray, usable: np.ndarray) -> float:
    """Robust sd of log-samples around their commit's median (MAD; mean absolute deviation when
    more than half are exactly 0, as with coarse timers)."""
    spread = np.abs(residuals[usable])
    if spread.size == 0:
        return 0.0
    mad = 1.4826 * float(np.median(spread))
    return mad if mad > 0.0 else 1.2533 * float(spread.mean())


def _between_variance(levels: np.ndarray, counts: np.ndarray, within: float) -> tuple[float, float]:
    """(tau2, its degrees of freedom): tau2 makes squared successive differences, divided by their
    expected variance, have the chi2_1 median, so that a few real steps barely move it."""
    diffs_sq = np.diff(levels) ** 2
    df_between = max(DF_PER_DIFFERENCE * len(diffs_sq), 1.0)
    sampling = within * (1.0 / counts[:-1] + 1.0 / counts[1:])
    if within == 0.0:
        # Identical repeats (or one sample per commit): all noise is commit-to-commit. The plain
        # mean of squares when most neighbours are identical, else a lone change is "certain".
        robust = float(np.median(diffs_sq)) / (2.0 * CHI2_1_MEDIAN)
        return (robust if robust > 0.0 else float(diffs_sq.mean()) / 2.0), df_between
    if len(diffs_sq) < MIN_DIFFERENCES_FOR_TAU:
        return 0.0, df_between

    def median_ratio(tau2: float) -> float:
        return float(np.median(diffs_sq / (2.0 * tau2 + sampling)))

    if median_ratio(0.0) <= CHI2_1_MEDIAN:
        return 0.0, df_between
    low, high = 0.0, float(diffs_sq.max())
    for _ in range(40):  # the median ratio decreases in tau2: bisection to ~1e-12 relative
        middle = 0.5 * (low + high)
        low, high = (middle, high) if median_ratio(middle) > CHI2_1_MEDIAN else (low, middle)
    return high, df_between


def _satterthwaite_df(tau2: float, sampling: float, df_between: float, df_within: float) -> float:
    """Degrees of freedom of tau2 + sampling, each estimated with its own degrees of freedom."""
    if tau2 <= 0.0:
        return df_within if df_within > 0 else df_between
    if sampling <= 0.0 or df_within <= 0:
        return df_between
    total = tau2 + sampling
    return total * total / (tau2 * tau2 / df_between + sampling * sampling / df_within)


def _best_boundary(series: _Series, lo: int, hi: int) -> Optional[tuple[int, float]]:
    """(boundary, Bonferroni-corrected p) of the most significant split of commits [lo, hi).

    The correction counts every boundary of the whole history, not only those of [lo, hi): the
    segments left after the splits never hold more than that many boundaries together, so the chance
    of any spurious extra step stays below alpha too.
    """
    variances = series.variances[lo:hi]
    if np.any(variances <= 0.0):
        return None  # no noise at all and no change (a change would have made tau2 > 0)
    weights = 1.0 / variances
    levels = series.levels[lo:hi]
    left_weight = np.cumsum(weights)[:-1]
    left_sum = np.cumsum(weights * levels)[:-1]
    right_weight = weights.sum() - left_weight
    right_sum = float(np.dot(weights, levels)) - left_sum
    z = (right_sum / right_weight - left_sum / left_weight) / np.sqrt(1.0 / left_weight + 1.0 / right_weight)
    best = int(np.argmax(np.abs(z)))
    p_single = 2.0 * float(special.stdtr(series.df, -abs(z[best])))
    return lo + best + 1, min(1.0, p_single * (len(series.positions) - 1))


def _segment(series: _Series, alpha: float, found: dict[int, float]) -> None:
    """Binary segmentation: split at the best boundary while it is significant, then recurse."""
    pending = [(0, len(series.positions))]
    while pending:
        lo, hi = pending.pop()
        if hi - lo < 2:
            continue
        best = _best_boundary(series, lo, hi)
        if best is None or best[1] >= alpha:
            continue
        boundary, p_value = best
        found[boundary] = p_value
        pending.extend(((lo, boundary), (boundary, hi)))


def _steps_from_boundaries(commits: list[str], series: _Series, found: dict[int, float], min_ratio: float) -> list[Step]:
    edges = [0, *sorted(found), len(series.positions)]
    bounds = series.offsets[edges]
    medians = [float(np.median(series.values[a:b])) for a, b in zip(bounds, bounds[1:])]
    steps = []
    for k, boundary in enumerate(edges[1:-1]):
        ratio = medians[k + 1] / medians[k]
        if ratio == 1.0 or max(ratio, 1.0 / ratio) < min_ratio:
            continue
        before, after = int(series.positions[boundary - 1]), int(series.positions[boundary])
        direction: Direction = "slower" if ratio > 1.0 else "faster"
        steps.append(Step(after, commits[before], commits[after], ratio, found[boundary], direction))
    return steps
