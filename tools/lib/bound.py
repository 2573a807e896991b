"""What an oracle can do on the drift / small-step pair of the evaluation grid: the bound that no
detector which does not know the drift's slope can pass.

Two rows of ``tools.lib.simulate.GRID`` ask one question: is a rise over 20 commits a step or a ramp?
The **step** histories are "offset 2% + 3% within, 1.1x step" (a 1.1x step at commits 5-16), the
**drift** histories the no-step twin of "10% linear drift over 20 commits, offset 2%" (10 % over the
history, no step), the **no-step** histories the no-step twin of the step row (a constant level).

Every oracle test here works on the per-commit **levels** ``y[i]`` = mean of commit ``i``'s log-samples
(log ms, shape ``(histories, commits)``) and **knows each level's noise variance**
``v[i] = s_offset**2 + s_within**2 / n[i]`` (log units squared; ``s`` the lognormal sigma of the
scenario's coefficient of variation, ``n[i]`` the commit's sample count), so it uses the weights
``w = 1 / v`` of weighted least squares. A real detector estimates the noise from the history.
The tests (statistic: larger = more of a step):

- ``step-vs-line``: RSS of the best straight line less RSS of the best "constant + step at k",
  k searched over the step row's commits 5-16 (a generalised likelihood-ratio test, GLRT).
- ``line+step-vs-line``: RSS of the line less RSS of "line + step at k". Its false rate on any
  straight line is the same whatever the slope.
- ``step-vs-constant``: RSS of the constant less RSS of "constant + step at k" (no trend model).
- ``step-vs-constant, then step-vs-line``: both must pass, the first at the no-step limit, the
  second at the drift target (a significant step, then a step rather than a line).
  ``the same, noise estimated`` is a real detector: every measured commit weighs 1 and each
  statistic is divided by the step model's RSS (F ratios); it knows only the step's range and the
  thresholds measured here.
- ``Neyman-Pearson, known slope``: the likelihood ratio of two exactly known shapes, the intercept
  projected out: a 1.1x step at a commit uniform on 5-16 against the 10 % drift's own line. It also
  knows the slope and the step's height: no test separates these two rows better (Neyman-Pearson
  lemma), so its power at a drift-false rate bounds every detector's at that rate.
- ``Neyman-Pearson, any slope``: the same test against a drift of each slope of ``SLOPES`` (0-20 %
  over the history), each on histories of that drift, its threshold set there; the cell is the
  slope where it detects the fewest steps. A detector that flags at most the target share of
  drifting histories whatever their slope (it does not know the slope) has that rate at this slope
  too, so this power bounds it (Neyman-Pearson lemma again).

Each single GLRT's threshold is the larger of the quantiles that flag at most the target share of
drift histories and at most ``const_false`` (1 %) of no-step histories; a two-stage test's first
threshold flags at most ``const_false`` of no-step histories, its second lets at most the target
share of drift histories pass both. A Neyman-Pearson test's threshold is set on the drift
histories alone (a bound on any detector with that drift-false rate, whatever it does on
constants). **Detected** = the test passes; **found** = detected with the boundary the test chose
(the best k; for Neyman-Pearson the most likely k) within one commit of the planted one, as the
evaluation scores a step. Found <= detected, so a bound on detection is one on finding.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from tools.lib.errors import ToolError
from tools.lib.simulate import GRID, History, Scenario, _lognormal_sigma, null_of, simulate

__all__ = ["TESTS", "GLRTS", "TWO_STAGE", "SLOPES", "DRIFT_FALSE", "CONST_FALSE", "BOUND_TRIALS", "Levels", "Cell",
           "levels", "glrt_stats", "np_stats", "threshold", "frontier", "markdown_table", "grid_rows"]

GLRTS = ("step-vs-line", "line+step-vs-line", "step-vs-constant")
TWO_STAGE = ("step-vs-constant, then step-vs-line", "the same, noise estimated")
TESTS = (*GLRTS, *TWO_STAGE, "Neyman-Pearson, any slope", "Neyman-Pearson, known slope")
SLOPES = tuple(i / 100 for i in range(0, 21, 2))  # drifts over the history of the any-slope bound
DRIFT_FALSE = (0.01, 0.02, 0.05, 0.10, 0.165)  # drift-false targets of the frontier (fractions)
CONST_FALSE = 0.01  # the most no-step histories a GLRT test may flag
BOUND_TRIALS = 4000  # histories per kind by default
# What each test knows that a real detector cannot (the table's second column).
KNOWS = {
    "step-vs-line": "noise variance per commit; step range 5-16",
    "line+step-vs-line": "noise variance per commit; step range 5-16",
    "step-vs-constant": "noise variance per commit; step range 5-16",
    "step-vs-constant, then step-vs-line": "noise variance per commit; step range 5-16",
    "the same, noise estimated": "step range 5-16",
    "Neyman-Pearson, any slope": "noise variance per commit; the step's height and range",
    "Neyman-Pearson, known slope": "noise variance per commit; the step's height and range; the drift's slope",
}


@dataclass(frozen=True)
class Levels:
    """Per-commit levels of a batch of histories: ``y`` (log units) and ``w`` (1 / variance; 0 for a
    commit that was not measured), both of shape ``(histories, commits)``; ``truth`` the planted
    boundary per history (-1: none)."""

    y: np.ndarray
    w: np.ndarray
    truth: np.ndarray


def levels(histories: Sequence[History], scenario: Scenario) -> Levels:
    """The levels of ``histories`` (all of ``scenario``'s length) with the variances the scenario
    implies. Outlier samples are not part of the model: a scenario with outliers is refused."""
    if scenario.outlier_rate:
        raise ToolError(f"the oracle models Gaussian log-noise only; {scenario.name!r} has outliers")
    m = scenario.commits
    y, w = np.zeros((len(histories), m)), np.zeros((len(histories), m))
    truth = np.full(len(histories), -1)
    s_off, s_in = _lognormal_sigma(scenario.offset_cv), _lognormal_sigma(scenario.within_cv)
    for h, history in enumerate(histories):
        if len(history.samples) != m:
            raise ToolError(f"history {h} has {len(history.samples)} commits, the scenario {m}")
        for i, samples in enumerate(history.samples):
            if samples:
                y[h, i] = float(np.mean(np.log(samples)))
                w[h, i] = 1.0 / (s_off ** 2 + s_in ** 2 / len(samples))
        if history.truth:
            truth[h] = history.truth[0][0]
    if np.any(w.sum(axis=1) == 0):
        raise ToolError("a history without a measured commit has no levels")
    return Levels(y, w, truth)


def _rss(lv: Levels, design: np.ndarray) -> np.ndarray:
    """Weighted residual sum of squares of the best fit of ``design`` (commits x p) per history."""
    gram = np.einsum("nm,mp,mq->npq", lv.w, design, design)
    rhs = np.einsum("nm,mp->np", lv.w * lv.y, design)
    beta = np.linalg.solve(gram + 1e-12 * np.eye(design.shape[1]), rhs[..., None])[..., 0]
    return np.einsum("nm,nm->n", lv.w, lv.y ** 2) - np.einsum("np,np->n", beta, rhs)


def _check_step_range(first: int, last: int, m: int) -> None:
    if not 1 <= first <= last <= m - 1:
        raise ToolError(f"step range {first}..{last} is not inside 1..{m - 1}")


def glrt_stats(lv: Levels, first: int, last: int, estimated: bool = False
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{test: (statistic, chosen boundary)} for the three GLRT tests, each of shape ``(histories,)``;
    the step is searched at commits ``first..last`` (0-based, first commit at the new level).
    ``estimated``: the noise is not known: every measured commit weighs the same, and each statistic
    is divided by the step model's RSS (an F statistic, the noise estimated from the history)."""
    if estimated:
        lv = Levels(lv.y, (lv.w > 0).astype(float), lv.truth)
    m = lv.y.shape[1]
    _check_step_range(first, last, m)
    one, t = np.ones(m), np.arange(m) / (m - 1)
    ks = np.arange(first, last + 1)
    rss_line, rss_const = _rss(lv, np.c_[one, t]), _rss(lv, one[:, None])
    step = np.stack([_rss(lv, np.c_[one, (np.arange(m) >= k)]) for k in ks], axis=1)
    line_step = np.stack([_rss(lv, np.c_[one, t, (np.arange(m) >= k)]) for k in ks], axis=1)
    scale = step.min(axis=1) if estimated else 1.0
    return {
        "step-vs-line": ((rss_line - step.min(axis=1)) / scale, ks[step.argmin(axis=1)]),
        "line+step-vs-line": ((rss_line - line_step.min(axis=1)) / scale, ks[line_step.argmin(axis=1)]),
        "step-vs-constant": ((rss_const - step.min(axis=1)) / scale, ks[step.argmin(axis=1)]),
    }


def _centred_quadratic(lv: Levels, mean: np.ndarray) -> np.ndarray:
    """(y - mean)' P (y - mean) with P = W - w w' / sum(w): the misfit with the intercept projected out."""
    r = lv.y - mean
    return np.einsum("nm,nm->n", lv.w, r * r) - np.einsum("nm,nm->n", lv.w, r) ** 2 / lv.w.sum(axis=1)


def np_stats(lv: Levels, log_step: float, log_drift: float, first: int, last: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Neyman-Pearson: (log likelihood ratio, most likely boundary), shape ``(histories,)``, of "a step
    of ``log_step`` (log units) at a commit uniform on ``first..last``" against "a line rising by
    ``log_drift`` over the history", both up to an unknown intercept."""
    m = lv.y.shape[1]
    _check_step_range(first, last, m)
    ks = np.arange(first, last + 1)
    drift = _centred_quadratic(lv, log_drift * np.arange(m) / (m - 1))
    steps = np.stack([_centred_quadratic(lv, log_step * (np.arange(m) >= k)) for k in ks], axis=1)
    loglik = -0.5 * steps
    top = loglik.max(axis=1)
    mixture = top + np.log(np.exp(loglik - top[:, None]).mean(axis=1))
    return mixture + 0.5 * drift, ks[loglik.argmax(axis=1)]


def threshold(null: np.ndarray, rate: float) -> float:
    """The smallest threshold at which ``stat > threshold`` flags at most ``rate`` of ``null``."""
    if not 0.0 < rate < 1.0:
        raise ToolError(f"a false-flag rate must be between 0 and 1, got {rate}")
    ordered = np.sort(np.asarray(null, dtype=float))
    if ordered.size == 0:
        raise ToolError("a threshold needs at least one null statistic")
    allowed = int(math.floor(rate * ordered.size + 1e-9))  # statistics that may lie above it
    return float(ordered[ordered.size - 1 - allowed]) if allowed < ordered.size else -math.inf


@dataclass(frozen=True)
class Cell:
    """One test at one drift-false target, in % of histories: steps detected and found, drift
    histories and no-step histories flagged; ``slope`` the drift (fraction over the history) the
    threshold was set on."""

    detected: float
    found: float
    drift_false: float
    const_false: float
    slope: float


def _check(trials: int, drift_false: Sequence[float], const_false: float) -> None:
    if trials < 1:
        raise ToolError(f"the bound needs at least 1 history per kind, got {trials}")
    if not drift_false:
        raise ToolError("the bound needs at least one drift-false target")
    for rate in (*drift_false, const_false):
        if not 0.0 < rate < 1.0:
            raise ToolError(f"a false-flag target must be between 0 and 1 (a fraction), got {rate}")
    smallest = min((*drift_false, const_false))
    if trials * smallest < 10:
        raise ToolError(f"{trials} histories per kind cannot place a threshold at a false rate of {smallest}: "
                        f"at least {math.ceil(10 / smallest)} needed")


def grid_rows() -> tuple[Scenario, Scenario, Scenario]:
    """(step, drift, no-step) scenarios: the grid's 1.1x row at 2 % offsets, the no-step twins of its
    10 % drift row and of the 1.1x row."""
    by_name = {s.name: s for s in GRID}
    step = by_name["offset 2% + 3% within, 1.1x step"]
    drift = null_of(by_name["10% linear drift over 20 commits, offset 2%, 1.3x step"])
    return step, drift, null_of(step)


def _cells(s_step: np.ndarray, k_step: np.ndarray, truth: np.ndarray, s_drift: np.ndarray, s_const: np.ndarray,
           drift_false: Sequence[float], const_false: Optional[float], slope: float) -> list[Cell]:
    cells = []
    for rate in drift_false:
        thr = threshold(s_drift, rate)
        if const_false is not None:
            thr = max(thr, threshold(s_const, const_false))
        hit = s_step > thr
        near = hit & (np.abs(k_step - truth) <= 1)
        cells.append(Cell(100 * hit.mean(), 100 * near.mean(), 100 * (s_drift > thr).mean(),
                          100 * (s_const > thr).mean(), slope))
    return cells


def _two_stage_cells(stats: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], truth: np.ndarray,
                     drift_false: Sequence[float], const_false: float, slope: float) -> list[Cell]:
    """Flag when step-vs-constant passes its threshold (at most ``const_false`` of no-step histories)
    and step-vs-line passes one set so that at most the target share of drift histories pass both."""
    gate = threshold(stats["const"]["step-vs-constant"][0], const_false)
    s_step, k_step = stats["step"]["step-vs-line"]
    passed = {n: stats[n]["step-vs-constant"][0] > gate for n in ("step", "drift", "const")}
    drift_line = np.where(passed["drift"], stats["drift"]["step-vs-line"][0], -np.inf)
    cells = []
    for rate in drift_false:
        thr = threshold(drift_line, rate)
        hit = {n: passed[n] & (stats[n]["step-vs-line"][0] > thr) for n in passed}
        near = hit["step"] & (np.abs(k_step - truth) <= 1)
        cells.append(Cell(100 * hit["step"].mean(), 100 * near.mean(), 100 * hit["drift"].mean(),
                          100 * hit["const"].mean(), slope))
    return cells


def frontier(trials: int = BOUND_TRIALS, seed: int = 0, drift_false: Sequence[float] = DRIFT_FALSE,
             const_false: float = CONST_FALSE, rows: Optional[tuple[Scenario, Scenario, Scenario]] = None,
             slopes: Sequence[float] = SLOPES) -> dict[str, list[Cell]]:
    """{test: one Cell per drift-false target}, on ``trials`` simulated histories of each kind of
    ``rows`` = (step, drift, no-step) (default: ``grid_rows()``), and for the any-slope bound
    ``trials`` histories of the drift row's noise at each of ``slopes``."""
    _check(trials, drift_false, const_false)
    step_row, drift_row, const_row = rows or grid_rows()
    if not (step_row.planted and step_row.back_after is None and not drift_row.planted and not const_row.planted):
        raise ToolError("the bound needs a lasting step row and two rows without a step")
    if not slopes or min(slopes) <= -1.0:
        raise ToolError(f"the any-slope bound needs drifts above -100 %, got {list(slopes)}")
    rng = np.random.default_rng(seed)
    kinds = {name: levels([simulate(row, rng) for _ in range(trials)], row)
             for name, row in (("step", step_row), ("drift", drift_row), ("const", const_row))}
    first, last, log_step = step_row.first_step, step_row.last_step, math.log(step_row.step)
    truth = kinds["step"].truth
    stats = {name: glrt_stats(lv, first, last) for name, lv in kinds.items()}
    out: dict[str, list[Cell]] = {}
    for test in GLRTS:
        (s_step, k_step), (s_drift, _), (s_const, _) = (stats[n][test] for n in ("step", "drift", "const"))
        out[test] = _cells(s_step, k_step, truth, s_drift, s_const, drift_false, const_false, drift_row.drift)
    estimated = {name: glrt_stats(lv, first, last, estimated=True) for name, lv in kinds.items()}
    for test, source in zip(TWO_STAGE, (stats, estimated)):
        out[test] = _two_stage_cells(source, truth, drift_false, const_false, drift_row.drift)

    def neyman_pearson(slope: float, drifting: Levels) -> list[Cell]:
        (s_step, k_step), (s_drift, _), (s_const, _) = (
            np_stats(lv, log_step, math.log1p(slope), first, last) for lv in (kinds["step"], drifting, kinds["const"]))
        return _cells(s_step, k_step, truth, s_drift, s_const, drift_false, None, slope)

    per_slope = []
    for slope in slopes:
        row = dataclasses.replace(drift_row, drift=slope)
        per_slope.append(neyman_pearson(slope, levels([simulate(row, rng) for _ in range(trials)], row)))
    out["Neyman-Pearson, any slope"] = [min(cells, key=lambda c: c.detected) for cells in zip(*per_slope)]
    out["Neyman-Pearson, known slope"] = neyman_pearson(drift_row.drift, kinds["drift"])
    return out


def markdown_table(result: dict[str, list[Cell]], drift_false: Sequence[float] = DRIFT_FALSE) -> str:
    """The frontier as a Markdown table: a row per test, a column per drift-false target. Cells:
    detected / found (drift histories flagged, no-step histories flagged), in %; for the any-slope
    bound the slope its cell was measured at."""
    head = " | ".join(f"drift ≤ {100 * r:g} %" for r in drift_false)
    lines = [f"| test | knows | {head} |", "|---|---|" + "---|" * len(drift_false)]
    for test, cells in result.items():
        body = " | ".join(f"{c.detected:.1f} / {c.found:.1f} ({c.drift_false:.1f}, {c.const_false:.1f})"
                          + (f" at {100 * c.slope:g} %" if test == "Neyman-Pearson, any slope" else "")
                          for c in cells)
        lines.append(f"| {test} | {KNOWS[test]} | {body} |")
    return "\n".join(lines)
