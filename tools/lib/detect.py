"""Find the commits where a benchmark got slower (or faster) in its history of per-commit samples.

asv's own step detection (what ``asv publish`` shows) sees one number per commit and has no
significance level. Here every commit's samples (times in ms, memory in MiB: any positive quantity
where larger means "slower") become one robust level, and a boundary is reported when a test whose
noise comes from the history's own segments says the levels on either side differ, after
correcting for the number of boundaries tried. The method, its measured rates and its limits are in
``docs/detection.md``; ``python -m tools.simulate --evaluate`` compares it with asv and Apache Otava.

What real benchmark machines do, and how the method answers it:

- **Whole runs shift** (another process state, CPU placement, a warmer GPU): the samples of one
  commit share an offset, so more samples per commit do not shrink a commit's noise. The unit of
  evidence is therefore the commit: one level per commit, the mean of its log-samples near their
  median; when a commit's samples are further apart than within-run noise explains, the mean of
  those near the lowest (timing outliers are slow: two slow samples of three do not move it).
- **Noise from segments.** The variance a boundary is tested against is the pooled variance of
  commit levels around their segment means, with the boundary under test as one more split (the
  two-sample t-test Otava uses, pooled over the whole history): ``m - segments`` degrees of freedom
  instead of a few successive differences.
- **Outlier commits** (a run hit by a GC pause, a single-sample commit with a slow sample) are
  commits far from the median of their neighbourhood (Hampel filter on the levels, window 5,
  robust scale from successive differences); they are left out and can neither make a step nor
  hide one.
- **Excursions** (up, then back down a few commits later): when no single boundary is significant,
  the best pair of boundaries (one segment set off from the rest) is tested, corrected for the
  number of pairs.
- **Drift** (a slow trend) is not a step: a second model explains the history with a linear trend
  (plus the steps of the detrended levels); it wins when its penalised misfit is smaller, a trend
  costing what a boundary costs less ``TREND_MARGIN``. A step must also be a jump where it stands
  (the commits right after it against the ones right before).
- **Noise floor as a prior**: a benchmark's measured between-run noise (``tools.lib.noise``) can be
  given as ``prior_sd``; it is pooled with the history's own estimate as ``PRIOR_DF`` extra degrees
  of freedom, so a series that happens to look quiet does not turn its noise into steps.

Cost: a sort and a few vectorised passes per history, plus a pair search over the segments left
at the end; ``python -m tools.simulate --speed`` times 1,000 histories x 500 commits.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special, stats

__all__ = ["Step", "detect_steps", "asv_steps", "levels_of", "detectable_step", "DEFAULT_ALPHA"]

DEFAULT_ALPHA = 0.01
# A commit is an outlier when its level is further than this many robust sd from the median of the
# five commits around it. Four sd of a Gaussian: about one commit in 16,000 by chance.
HAMPEL_SD = 6.0
HAMPEL_HALF_WINDOW = 2
# Samples further than this many within-commit sd from their commit's median are left out of its level.
KEEP_SD = 3.0
# Samples of one commit further apart than this many within-commit sd hold slow outliers: the
# level comes from the samples near the lowest.
PAIR_OUTLIER_SD = 6.0
# Penalty of explaining a history with a linear trend: the penalty of one boundary (the squared t
# a boundary needs) less this margin, so the trend costs slightly less than a step at every
# history length (a fixed penalty made a straight line cheaper than a step in short histories,
# where a boundary's t must be large, and took clear steps for drift). At 3.16 a trend in a
# 20-commit history costs 15, as it did with a fixed penalty (a boundary needs t^2 = 18.16 there).
TREND_MARGIN = 3.16
# Simulated noise histories that measure how many independent tests a search is worth; pairs only
# up to this many commits (beyond: Bonferroni, which is conservative).
CALIBRATION_HISTORIES = 20000
PAIR_CALIBRATION_MAX = 60
# The longest excursion the pair search tries (longer ones are two single steps to it); every
# excursion up to the calibrated history length.
EXCURSION_MAX = PAIR_CALIBRATION_MAX
# A step is a jump where it stands: the mean of up to this many commits after it against as many
# before, in standard errors, at least LOCAL_Z (one-sided 1 %).
LOCAL_WINDOW = 3
LOCAL_Z = 2.33
# Degrees of freedom the benchmark's measured noise floor is worth, pooled with the history's own.
PRIOR_DF = 8.0

Direction = Literal["slower", "faster"]


@dataclass(frozen=True)
class Step:
    """One change point in a benchmark's history.

    ``index``: position (in the ``commits`` list given) of the first commit with the new level;
    ``before``/``after``: the last commit with data before the change and the first commit after it
    (commits without samples between them are unresolved: the change is somewhere in ``(before, after]``);
    ``ratio``: median level of the segment after / of the segment before (> 1: slower);
    ``p_value``: corrected for the boundaries tried (None where the detector has none, e.g. asv);
    ``direction``: "slower" when ``ratio > 1`` else "faster".
    """

    index: int
    before: str
    after: str
    ratio: float
    p_value: Optional[float]
    direction: Direction
    level_before: Optional[float] = None  # median commit level of the segment before, in the samples' unit
    level_after: Optional[float] = None


def detect_steps(
    commits: list[str],
    samples: list[list[float]],
    alpha: float = DEFAULT_ALPHA,
    min_ratio: float = 1.0,
    prior_sd: Optional[float] = None,
) -> list[Step]:
    """Change points in one benchmark's history, oldest commit first.

    ``samples[i]`` holds every sample (ms, MiB, ... larger = slower) measured at ``commits[i]``;
    ``None`` or ``[]`` means the commit was not measured. ``alpha`` bounds the chance of reporting
    anything on a history without a change (family-wise, per history). ``min_ratio`` drops steps
    smaller than that factor in either direction (1.05 keeps only >= 5% changes). ``prior_sd``: the
    benchmark's known sd of one commit's level (log scale, ~ a coefficient of variation), or None.
    Steps are returned in commit order.
    """
    _check_arguments(commits, samples, alpha, min_ratio, prior_sd)
    positions, levels, counts, spread_ok = levels_of(samples)
    if len(positions) < 3:
        return []
    keep = _not_outliers(levels, counts, spread_ok)
    positions, levels = positions[keep], levels[keep]
    m = len(levels)
    if m < 3 or np.ptp(levels) == 0.0:
        return []
    centred = levels - np.median(levels)  # prefix sums of squares stay accurate (logs of bytes are ~20)
    found = _fit(centred, positions.astype(np.float64), alpha, prior_sd)
    found = _local_jumps(centred, found)
    return _steps(commits, positions, levels, found, min_ratio)


def detectable_step(sd: float, commits_before: int = 5, commits_after: int = 5, commits: int = 20,
                    alpha: float = DEFAULT_ALPHA, power: float = 0.8) -> float:
    """The smallest step (a fraction: 0.1 = 10 %) this detector finds with probability ``power``
    in a history of ``commits`` commits, ``commits_before``/``commits_after`` of them on either
    side, when one commit's level has sd ``sd`` (log scale, ~ its coefficient of variation).

    The threshold is the single-split test's (Bonferroni over ``commits - 1`` boundaries with half
    of ``alpha``); ``tools.lib.noise`` computes each benchmark's minimum detectable effect with it.
    """
    if not (sd >= 0.0 and math.isfinite(sd)):
        raise ValueError(f"sd must be a finite number >= 0, got {sd}")
    if commits_before < 1 or commits_after < 1 or commits < commits_before + commits_after:
        raise ValueError(f"need 1+ commits on each side within {commits} commits, got {commits_before} and {commits_after}")
    critical = float(stats.t.isf(alpha / (4.0 * (commits - 1)), max(commits - 3, 1)))
    shift = (critical + float(stats.norm.isf(1.0 - power))) * sd * math.sqrt(1.0 / commits_before + 1.0 / commits_after)
    return math.expm1(shift)


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


def _check_arguments(commits: list[str], samples: list[list[float]], alpha: float, min_ratio: float,
                     prior_sd: Optional[float]) -> None:
    if len(commits) != len(samples):
        raise ValueError(f"{len(commits)} commits but {len(samples)} sample lists")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not min_ratio >= 1.0:
        raise ValueError(f"min_ratio must be >= 1 (it applies to both directions), got {min_ratio}")
    if prior_sd is not None and not (math.isfinite(prior_sd) and prior_sd >= 0.0):
        raise ValueError(f"prior_sd must be a finite sd >= 0 (log scale), got {prior_sd}")


def levels_of(samples: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per commit with samples: (its index in ``samples``, its log-level, its sample count, whether
    its spread is within the pooled within-commit noise).

    The level is the mean of the log-samples within ``KEEP_SD`` within-commit sd of the commit's
    median; when the commit's samples span more than ``PAIR_OUTLIER_SD`` within-commit sd, the mean
    of those within ``KEEP_SD`` of the lowest (slow outliers are the common case in timings; of a
    pair, the lower sample).
    """
    present = [i for i, chunk in enumerate(samples) if chunk is not None and len(chunk) > 0]
    chunks = [samples[i] for i in present]
    try:
        values = np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in chunks]) if chunks else np.empty(0)
    except (TypeError, ValueError) as error:
        raise ValueError(f"samples must be lists of numbers (or None for a commit not measured): {error}") from None
    counts = np.array([len(c) for c in chunks], dtype=np.int64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        commit = present[int(np.searchsorted(np.cumsum(counts), int(np.argmax(bad)), side="right"))]
        raise ValueError(f"samples of commit #{commit} must be finite and > 0 (steps are ratios), got {list(samples[commit])}")
    m = len(present)
    if m == 0:
        return np.empty(0, np.int64), np.empty(0), counts, np.empty(0, bool)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    owner = np.repeat(np.arange(m), counts)
    logs = np.log(values)
    ordered = logs[np.lexsort((logs, owner))]  # each commit's samples sorted: medians without a loop
    low, high = ordered[offsets[:-1] + (counts - 1) // 2], ordered[offsets[:-1] + counts // 2]
    levels = 0.5 * (low + high)
    deviation = np.abs(logs - levels[owner])
    within = _within_sd(deviation, counts[owner] > 1)
    widest = np.maximum.reduceat(deviation, offsets[:-1]) if len(values) else np.zeros(m)
    pairs = counts == 2
    if within > 0.0:
        # The mean of the samples near the median (more precise than the median; an outlier far
        # from it is left out).
        near = deviation <= KEEP_SD * within
        kept = np.bincount(owner, near, minlength=m)
        means = np.bincount(owner, np.where(near, logs, 0.0), minlength=m) / np.maximum(kept, 1)
        levels = np.where((kept > 0) & ~pairs, means, levels)
        levels = np.where(pairs, 0.5 * (low + high), levels)
        # Samples further apart than any within-run noise explains: timing outliers are slow, so
        # the level is the mean of the samples near the lowest (of 3 samples with 2 slow ones,
        # the median would be an outlier; of a pair, the lower one).
        lowest, highest = ordered[offsets[:-1]], ordered[offsets[1:] - 1]
        split = (counts >= 2) & (highest - lowest > PAIR_OUTLIER_SD * within)
        near_low = logs - lowest[owner] <= KEEP_SD * within
        low_means = (np.bincount(owner, np.where(near_low, logs, 0.0), minlength=m)
                     / np.maximum(np.bincount(owner, near_low, minlength=m), 1))
        levels = np.where(split, low_means, levels)
        spread_ok = widest <= 3.0 * within
    else:
        spread_ok = widest == 0.0
    return np.array(present, dtype=np.int64), levels, counts, spread_ok


def _within_sd(deviation: np.ndarray, usable: np.ndarray) -> float:
    """Robust sd of log-samples about their commit's median (deviations of commits with 2+ samples)."""
    spread = deviation[usable]
    spread = spread[spread > 0.0]  # the median sample itself (odd counts) is 0 by construction
    if spread.size == 0:
        return 0.0
    return 1.4826 * float(np.median(spread))


def _robust_sd(levels: np.ndarray) -> float:
    """sd of one commit's level, from the median absolute successive difference (steps barely move it)."""
    diffs = np.abs(np.diff(levels))
    sd = float(np.median(diffs)) / (0.6745 * math.sqrt(2.0))
    if sd == 0.0:  # most neighbours identical (deterministic values): the mean absolute difference
        sd = float(diffs.mean()) * math.sqrt(math.pi) / 2.0
    return sd


def _not_outliers(levels: np.ndarray, counts: np.ndarray, spread_ok: np.ndarray) -> np.ndarray:
    """Mask of commits kept: not far from the median of the commits around them (Hampel filter).

    The newest commit alone at a new level is kept when it has 3+ samples that agree with each
    other (a regression in the newest commit, not one slow sample); otherwise it waits for the next
    commit (or a confirmation run) to tell a step from an outlier.

    An edge commit kept while the commit next to it is dropped is checked again: the edge's median
    comes from the first (last) three commits, and two outliers among them (slow commits 0 and 2)
    make it an outlier's level, which keeps the slow commit 0 and drops the normal commit 1 between
    them. When the dropped commit agrees with the median of the first (last) three commits kept
    and the edge commit does not, the two swap: the edge commit is the outlier.
    """
    m = len(levels)
    if m < 2 * HAMPEL_HALF_WINDOW + 1:
        return np.ones(m, dtype=bool)
    scale = _robust_sd(levels)
    keep = _hampel(levels, scale)
    for edge, beside, nearest in ((0, 1, slice(0, 3)), (m - 1, m - 2, slice(-3, None))):
        if keep[edge] and not keep[beside] and keep.sum() >= 3:
            centre = float(np.median(levels[keep][nearest]))
            if abs(levels[beside] - centre) <= HAMPEL_SD * scale < abs(levels[edge] - centre):
                keep[edge], keep[beside] = False, True
    if not keep[-1] and counts[-1] >= 3 and spread_ok[-1]:
        keep[-1] = True
    return keep


def _hampel(levels: np.ndarray, scale: float) -> np.ndarray:
    """Mask of levels within ``HAMPEL_SD`` x ``scale`` of the median of the five around them."""
    windows = sliding_window_view(levels, 2 * HAMPEL_HALF_WINDOW + 1)
    centre = np.median(windows, axis=1)
    centre = np.concatenate((np.full(HAMPEL_HALF_WINDOW, centre[0]), centre, np.full(HAMPEL_HALF_WINDOW, centre[-1])))
    # The edges: the median of the commits nearest the edge (the commit and two or three inwards),
    # not the first window's, which holds three commits of a new level when a step (or an
    # excursion) lands two commits from the edge, and would drop the two commits before it.
    centre[0] = np.median(levels[:3])
    centre[1] = np.median(levels[:4])
    centre[-1] = np.median(levels[-3:])
    centre[-2] = np.median(levels[-4:])
    # Two adjacent disturbed commits are still outliers: asv measures a range's commits one after
    # another, so a burst of load on a shared machine often spans two of them.
    return np.abs(levels - centre) <= HAMPEL_SD * scale if scale > 0 else levels == centre


def _pooled(sums: np.ndarray, squares: np.ndarray, sizes: np.ndarray) -> float:
    """Residual sum of squares of segments around their own means."""
    return float(np.sum(squares - sums * sums / sizes))


class _Fit:
    """Prefix sums of levels for O(1) segment means and residual sums of squares."""

    def __init__(self, levels: np.ndarray):
        self.y = levels
        self.s1 = np.concatenate(([0.0], np.cumsum(levels)))
        self.s2 = np.concatenate(([0.0], np.cumsum(levels * levels)))

    def rss(self, lo: int, hi: int) -> float:
        n = hi - lo
        s = self.s1[hi] - self.s1[lo]
        return float(self.s2[hi] - self.s2[lo] - s * s / n)

    def total_rss(self, bounds: list[int]) -> float:
        return sum(self.rss(a, b) for a, b in zip(bounds, bounds[1:]))


def _variance(rss: float, df: int, prior_sd: Optional[float]) -> tuple[float, float]:
    """(variance of one commit's level, its degrees of freedom), the prior pooled in when given."""
    if prior_sd is not None and prior_sd > 0.0:
        return (rss + PRIOR_DF * prior_sd * prior_sd) / (df + PRIOR_DF), df + PRIOR_DF
    return (rss / df if df > 0 else 0.0), float(df)


def _p_two_sided(t: np.ndarray | float, df: float) -> np.ndarray | float:
    return 2.0 * special.stdtr(df, -np.abs(t))


def _best_split(fit: _Fit, lo: int, hi: int, rss_other: float, m: int, segments: int,
                prior_sd: Optional[float]) -> Optional[tuple[int, float]]:
    """(boundary, uncorrected p) of the most significant single split of [lo, hi), the variance
    pooled over every segment of the history with this split added."""
    n = hi - lo
    if n < 2:
        return None
    k = np.arange(lo + 1, hi)
    n_left, n_right = k - lo, hi - k
    s_left, s_right = fit.s1[k] - fit.s1[lo], fit.s1[hi] - fit.s1[k]
    q_left, q_right = fit.s2[k] - fit.s2[lo], fit.s2[hi] - fit.s2[k]
    rss = rss_other + (q_left - s_left ** 2 / n_left) + (q_right - s_right ** 2 / n_right)
    df = m - segments - 1
    if df <= 0 and prior_sd is None:
        return None
    variance, dof = _variance(rss, df, prior_sd)
    diff = s_right / n_right - s_left / n_left
    se = np.sqrt(np.maximum(variance, 0.0) * (1.0 / n_left + 1.0 / n_right))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, diff / se, np.where(diff != 0, np.inf, 0.0))
    best = int(np.argmax(np.abs(t)))
    return int(k[best]), float(_p_two_sided(t[best], dof))


def _best_pair(fit: _Fit, lo: int, hi: int, rss_other: float, m: int, segments: int,
               prior_sd: Optional[float]) -> Optional[tuple[int, int, float, int]]:
    """(a, b, uncorrected p, pairs tried) of the segment [a, b) inside [lo, hi) (2 to
    ``EXCURSION_MAX`` commits, not touching both ends) that differs most from the rest of [lo, hi)."""
    n = hi - lo
    if n < 4:
        return None
    a = np.arange(lo + 1, hi - 2)[:, None]
    b = a + np.arange(2, EXCURSION_MAX + 1)[None, :]
    valid = b <= hi - 1
    b = np.minimum(b, hi - 1)
    inner_n = (b - a).astype(np.float64)
    inner_s = fit.s1[b] - fit.s1[a]
    inner_q = fit.s2[b] - fit.s2[a]
    outer_n = n - inner_n
    outer_s = (fit.s1[hi] - fit.s1[lo]) - inner_s
    outer_q = (fit.s2[hi] - fit.s2[lo]) - inner_q
    with np.errstate(divide="ignore", invalid="ignore"):
        rss = rss_other + (inner_q - inner_s ** 2 / inner_n) + (outer_q - outer_s ** 2 / outer_n)
        df = m - segments - 2
        if df <= 0 and prior_sd is None:
            return None
        variance, dof = _variance(rss, df, prior_sd)
        diff = inner_s / inner_n - outer_s / outer_n
        se = np.sqrt(np.maximum(variance, 0.0) * (1.0 / inner_n + 1.0 / outer_n))
        t = np.where(se > 0, diff / se, np.where(diff != 0, np.inf, 0.0))
    t = np.where(valid, np.abs(t), -1.0)
    flat = int(np.argmax(t))
    i, j = divmod(flat, t.shape[1])
    tried = int(valid.sum())
    return int(a[i, 0]), int(b[i, j]), float(_p_two_sided(t[i, j], dof)), tried


def _max_t_single(y: np.ndarray) -> np.ndarray:
    """Per row of ``y`` (sims, m): the largest |t| of a single split with the pooled variance."""
    sims, m = y.shape
    k = np.arange(1, m, dtype=np.float64)
    cs = np.cumsum(y, axis=1)[:, :-1]
    total = y.sum(axis=1, keepdims=True)
    squares = np.einsum("ij,ij->i", y, y)[:, None]
    right = total - cs
    rss = squares - cs ** 2 / k - right ** 2 / (m - k)
    diff = right / (m - k) - cs / k
    t = diff / np.sqrt(np.maximum(rss, 1e-300) / (m - 2) * (1.0 / k + 1.0 / (m - k)))
    return np.abs(t).max(axis=1)


def _max_t_pair(y: np.ndarray) -> np.ndarray:
    """Per row of ``y`` (sims, m): the largest |t| of one inner segment [a, b) (2+ commits, not
    touching both ends) against the rest, pooled variance."""
    sims, m = y.shape
    a, b = np.triu_indices(m + 1, 2)
    keep = (a >= 1) & (b <= m - 1)
    a, b = a[keep], b[keep]
    s1 = np.concatenate((np.zeros((sims, 1)), np.cumsum(y, axis=1)), axis=1)
    squares = np.einsum("ij,ij->i", y, y)[:, None]
    total = s1[:, -1:]
    n_in = (b - a).astype(np.float64)
    n_out = m - n_in
    inner = s1[:, b] - s1[:, a]
    outer = total - inner
    rss = squares - inner ** 2 / n_in - outer ** 2 / n_out
    diff = inner / n_in - outer / n_out
    t = diff / np.sqrt(np.maximum(rss, 1e-300) / (m - 3) * (1.0 / n_in + 1.0 / n_out))
    return np.abs(t).max(axis=1)


@functools.lru_cache(maxsize=None)
def _tests_worth(m: int, kind: str, alpha: float) -> float:
    """How many independent tests the search over all single splits (``kind`` "single") or all
    inner segments ("pair") of m commits is worth: the factor that makes the smallest p-value of
    the search on Gaussian noise fall below ``alpha`` with probability ``alpha``.

    Bonferroni would use the number of boundaries tried, but neighbouring boundaries test nearly
    the same thing; the factor is measured on ``CALIBRATION_HISTORIES`` simulated histories with
    a fixed seed (deterministic), and never exceeds Bonferroni's.
    """
    bonferroni = float(m - 1) if kind == "single" else float(max(sum(
        max(0, min(EXCURSION_MAX, m - 1 - a) - 1) for a in range(1, m - 2)), 1))
    if m < 4 or (kind == "pair" and m > PAIR_CALIBRATION_MAX):
        return bonferroni
    rng = np.random.default_rng(20260101 + m)
    sims = max(CALIBRATION_HISTORIES // max(m // 50, 1) // (1 if kind == "single" else 4), 2000)
    worst = np.concatenate([
        (_max_t_single if kind == "single" else _max_t_pair)(rng.standard_normal((min(1000, sims - done), m)))
        for done in range(0, sims, 1000)])
    df = m - 2 if kind == "single" else m - 3
    smallest_p = 2.0 * special.stdtr(df, -worst)
    critical = float(np.quantile(smallest_p, alpha))
    return float(min(bonferroni, alpha / critical)) if critical > 0 else bonferroni


def _segment(levels: np.ndarray, alpha: float, prior_sd: Optional[float]) -> list[tuple[int, float]]:
    """Greedy binary segmentation: the most significant single split of any current segment while
    one is significant; then, in segments that no single split divides, the most significant
    excursion (a pair of boundaries). Each search spends half of ``alpha``, its p-values corrected
    by the number of tests it is worth (``_tests_worth``). Returns the boundaries found, each
    with the correction factor it was found under."""
    fit = _Fit(levels)
    m = len(levels)
    bounds = [0, m]
    found: dict[int, float] = {}  # boundary -> Bonferroni factor it was found under
    while True:
        rss_all = fit.total_rss(bounds)
        best: Optional[tuple[float, int]] = None
        for lo, hi in zip(bounds, bounds[1:]):
            split = _best_split(fit, lo, hi, rss_all - fit.rss(lo, hi), m, len(bounds) - 1, prior_sd)
            if split is not None and (best is None or split[1] < best[0]):
                best = (split[1], split[0])
        single = 2.0 * _tests_worth(m, "single", alpha / 2.0)
        if best is not None and best[0] * single < alpha:
            found[best[1]] = single
            bounds = sorted({*bounds, best[1]})
            continue
        pair_best: Optional[tuple[float, int, int]] = None
        pairs = 2.0 * _tests_worth(m, "pair", alpha / 2.0)
        for lo, hi in zip(bounds, bounds[1:]):
            pair = _best_pair(fit, lo, hi, rss_all - fit.rss(lo, hi), m, len(bounds) - 1, prior_sd)
            if pair is not None:
                a, b, p, _ = pair
                corrected = p * pairs
                if pair_best is None or corrected < pair_best[0]:
                    pair_best = (corrected, a, b)
        if pair_best is not None and pair_best[0] < alpha:
            corrected, a, b = pair_best
            found[a] = found[b] = pairs
            bounds = sorted({*bounds, a, b})
            continue
        return sorted(found.items())


def _prune(levels: np.ndarray, found: list[tuple[int, float]], alpha: float,
           prior_sd: Optional[float]) -> list[tuple[int, float]]:
    """Re-test every boundary against its two neighbouring segments with the final pooled variance
    (Bonferroni factor as when it was found); drop the weakest non-significant one and repeat
    (Otava's merge step). Returns (boundary, corrected p)."""
    fit = _Fit(levels)
    m = len(levels)
    boundaries = [b for b, _ in found]
    factors = dict(found)
    while boundaries:
        bounds = [0, *boundaries, m]
        rss = fit.total_rss(bounds)
        variance, dof = _variance(rss, m - len(bounds) + 1, prior_sd)
        if dof <= 0:
            return []
        ps = []
        for i in range(1, len(bounds) - 1):
            a, k, b = bounds[i - 1], bounds[i], bounds[i + 1]
            diff = (fit.s1[b] - fit.s1[k]) / (b - k) - (fit.s1[k] - fit.s1[a]) / (k - a)
            se = math.sqrt(max(variance, 0.0) * (1.0 / (k - a) + 1.0 / (b - k)))
            t = diff / se if se > 0 else (math.inf if diff else 0.0)
            ps.append(min(1.0, float(_p_two_sided(t, dof)) * factors[k]))
        worst = int(np.argmax(ps))
        if ps[worst] < alpha:
            return list(zip(boundaries, ps))
        del boundaries[worst]
    return []


def _within_slope(levels: np.ndarray, times: np.ndarray, boundaries: list[int]) -> tuple[float, float]:
    """(slope per commit, its t statistic) of one trend shared by all segments, each segment with
    its own level (least squares)."""
    bounds = [0, *boundaries, len(levels)]
    sxy = sxx = rss_flat = 0.0
    for a, b in zip(bounds, bounds[1:]):
        x = times[a:b] - times[a:b].mean()
        y = levels[a:b] - levels[a:b].mean()
        sxy += float(np.dot(x, y))
        sxx += float(np.dot(x, x))
        rss_flat += float(np.dot(y, y))
    if sxx == 0.0:
        return 0.0, 0.0
    slope = sxy / sxx
    df = len(levels) - len(bounds) + 1 - 1
    rss = rss_flat - slope * sxy
    if df <= 0 or rss <= 0.0:
        return slope, (math.inf if slope else 0.0)
    return slope, slope / math.sqrt(rss / df / sxx)


def _cost(levels: np.ndarray, times: np.ndarray, found: list[tuple[int, float]], slope: float,
          alpha: float) -> float:
    """Penalised fit of a model (segments, optional trend): ``m log(RSS / m)`` plus, per boundary,
    what a boundary that just passes (its t at the Bonferroni threshold over m - 1 at ``alpha``)
    takes off ``m log(RSS / m)``, plus the same less ``TREND_MARGIN`` for the trend.

    A boundary whose t is ``t`` divides the RSS by ``1 + t**2 / df``, so its price is
    ``m log(1 + need / df)``, in the misfit's own units: charged as the bare ``need`` (~40 at 8
    commits against ~18 in misfit units), a staircase of significant steps lost to a straight line.
    """
    m = len(levels)
    y = levels - slope * times
    bounds = [0, *[b for b, _ in found], m]
    rss = sum(float(np.sum((y[a:b] - y[a:b].mean()) ** 2)) for a, b in zip(bounds, bounds[1:]))
    df = max(m - 3, 1)
    need = float(stats.t.isf(alpha / 2.0 / max(m - 1, 1), df)) ** 2
    price = m * math.log1p(need / df)
    return m * math.log(max(rss, 1e-300) / m) + price * len(found) + (max(price - TREND_MARGIN, 0.0) if slope else 0.0)


def _fit(levels: np.ndarray, times: np.ndarray, alpha: float, prior_sd: Optional[float]) -> list[tuple[int, float]]:
    """Steps of ``levels``, around a linear trend when a trend explains the history better (drift
    is not a step).

    Two candidates: the segments of the levels as they are; and a trend found by alternating,
    from the least-squares slope of the whole history, between segmenting the detrended levels and
    re-estimating the slope within the segments found. The one with the smaller penalised misfit
    (``_cost``) wins.
    """
    search = lambda y: _prune(y, _segment(y, alpha, prior_sd), alpha, prior_sd)  # noqa: E731
    plain = search(levels)
    if len(levels) < 6:
        return plain
    slope, _ = _within_slope(levels, times, [])
    seen: list[list[int]] = []
    for _ in range(6):
        found = search(levels - slope * times)
        boundaries = [b for b, _ in found]
        if boundaries in seen:
            break
        seen.append(boundaries)
        slope, _ = _within_slope(levels, times, boundaries)
    if slope == 0.0 or _cost(levels, times, found, slope, alpha) >= _cost(levels, times, plain, 0.0, alpha):
        return plain
    return found


def _local_jumps(levels: np.ndarray, found: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The boundaries that are a jump where they stand: the ``LOCAL_WINDOW`` commits after a
    boundary differ from the ones before it by ``LOCAL_Z`` standard errors (pooled residual sd of
    the segments). A slow drift passes a segment test over many commits, but its neighbouring
    commits barely differ; a step's do."""
    if not found:
        return found
    bounds = [0, *[b for b, _ in found], len(levels)]
    fit = _Fit(levels)
    df = len(levels) - len(bounds) + 1
    if df <= 0:
        return found
    sd = math.sqrt(max(fit.total_rss(bounds), 0.0) / df)  # prefix sums can cancel to -1e-17
    kept = []
    for i, (boundary, p_value) in enumerate(found):
        w = min(LOCAL_WINDOW, boundary - bounds[i], bounds[i + 2] - boundary)
        jump = levels[boundary:boundary + w].mean() - levels[boundary - w:boundary].mean()
        if sd == 0.0 or abs(jump) / (sd * math.sqrt(2.0 / w)) >= LOCAL_Z:
            kept.append((boundary, p_value))
    return kept


def _steps(commits: list[str], positions: np.ndarray, levels: np.ndarray, found: list[tuple[int, float]],
           min_ratio: float) -> list[Step]:
    edges = [0, *[b for b, _ in found], len(levels)]
    medians = [float(np.median(levels[a:b])) for a, b in zip(edges, edges[1:])]
    steps = []
    for k, (boundary, p_value) in enumerate(found):
        ratio = math.exp(medians[k + 1] - medians[k])
        if ratio == 1.0 or max(ratio, 1.0 / ratio) < min_ratio:
            continue
        before, after = int(positions[boundary - 1]), int(positions[boundary])
        direction: Direction = "slower" if ratio > 1.0 else "faster"
        steps.append(Step(after, commits[before], commits[after], ratio, p_value, direction,
                          math.exp(medians[k]), math.exp(medians[k + 1])))
    return steps


if __name__ == "__main__":
    # Run as a script by mistake: name the commands instead of exiting 0 having done nothing.
    import sys

    sys.exit("usage: tools.lib.detect is a library (from tools.lib.detect import detect_steps); its commands are "
             "python -m tools.report (verdicts) and python -m tools.simulate (evaluation; --speed for timing)")
