"""Regressions (steps the wrong way) in per-commit series, each benchmark judged in its own direction.

The one path from results to regressions: ``tools.lib.series`` gives each (machine, benchmark,
params) series; ``series_steps`` turns it lower-is-better (times, memory: as they are; throughput
and capacity, ``HIGHER_IS_BETTER_UNITS``: inverted) and runs the detector (``tools.lib.detect``,
or asv's ``step_detect`` with ``detector="asv"``); ``find_regressions`` keeps the slowdowns.
``tools.lib.verdicts`` adds confirmations and noise floors; report, badges, bisect and publish read
from there.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Optional

from tools.lib.detect import DEFAULT_ALPHA, Step, asv_steps, detect_steps
from tools.lib.errors import ToolError, ToolWarning
from tools.lib.series import Point, Series, split_judgeable

__all__ = ["Regression", "HIGHER_IS_BETTER_UNITS", "higher_is_better", "series_steps", "find_regressions",
           "load_samples_detector"]

HIGHER_IS_BETTER_UNITS = frozenset({"tokens", "tokens/s", "TFLOP/s"})


@dataclass
class Regression:
    machine: str
    benchmark: str
    params: dict[str, str]
    unit: str
    last_good: str  # full commit hash (the last measured commit before the step)
    first_bad: str
    before: float  # benchmark unit (seconds, bytes, TFLOP/s): the level before the step
    after: float
    ratio: float  # > 1: worse by this factor in the benchmark's own direction
    p_value: Optional[float]
    open: bool  # the newest level is still at least ``threshold`` times worse than ``before``
    status: str = "candidate"  # "candidate" | "confirmed" (re-measured: tools.lib.verdicts.with_confirmations)
    noise_floor: Optional[float] = None  # the benchmark's minimum detectable effect, a fraction

    def to_json(self) -> dict:
        return asdict(self)


def higher_is_better(unit: str) -> bool:
    """Throughput (tokens/s, TFLOP/s) and capacity (tokens): a drop is the regression."""
    return unit in HIGHER_IS_BETTER_UNITS


def _valid(points: list[Point]) -> list[Point]:
    return [p for p in points if p.value is not None and p.value == p.value and p.value > 0]


def _oriented(values: list[float], flip: bool) -> list[float]:
    return [1.0 / v for v in values] if flip else list(values)


def series_steps(series: Series, detector: str = "samples", alpha: float = DEFAULT_ALPHA,
                 prior_sd: Optional[float] = None) -> tuple[list[Point], list[Step]]:
    """(the measured points, the steps of the series made lower-is-better): ``Step.ratio`` > 1 is
    a regression whatever the unit; ``Step.index`` indexes the returned points.

    A commit's samples are used when asv kept them, else its value counts once. Values <= 0 or NaN
    (a failed or empty measurement) are left out.
    """
    points = _valid(series.points)
    flip = higher_is_better(series.unit)
    commits = [p.commit for p in points]
    if detector == "asv":
        return points, asv_steps(commits, _oriented([p.value for p in points], flip))
    samples = [_oriented([s for s in p.samples if s is not None and s == s and s > 0] or [p.value], flip)
               for p in points]
    return points, detect_steps(commits, samples, alpha=alpha, prior_sd=prior_sd)


def load_samples_detector():
    """The sample-aware detector, or None (with a note on stderr) when tools.lib.detect is not there."""
    try:
        from tools.lib.detect import detect_steps as found
    except ImportError as exc:
        warnings.warn(f"sample-aware detector unavailable ({exc}); using asv's step detection", ToolWarning)
        return None
    return found


def _regressions_of(series: Series, points: list[Point], steps: list[Step], threshold: float) -> list[Regression]:
    flip = higher_is_better(series.unit)
    unit_value = (lambda level: 1.0 / level) if flip else (lambda level: level)
    found = []
    latest = steps[-1].level_after if steps else None
    for step in steps:
        if step.ratio < threshold or step.direction != "slower":
            continue
        before = step.level_before if step.level_before is not None else points[step.index - 1].value
        after = step.level_after if step.level_after is not None else points[step.index].value
        if flip and step.level_before is not None:
            before, after = unit_value(step.level_before), unit_value(step.level_after)
        newest = latest if latest is not None else (step.level_after or after)
        still_open = step.level_before is None or newest >= threshold * step.level_before
        found.append(Regression(series.machine, series.benchmark, series.params, series.unit,
                                points[step.index - 1].commit, points[step.index].commit, before, after,
                                step.ratio, step.p_value, still_open))
    return found


def find_regressions(all_series: list[Series], detector: str, threshold: float,
                     alpha: float = DEFAULT_ALPHA) -> tuple[list[Regression], str]:
    """Regressions in every series, and the detector actually used ("samples" may fall back to "asv").

    A series with a zero, negative or infinite value cannot be judged: it is left out with a
    ``ToolWarning`` naming it (``tools.lib.series.split_judgeable``), the others are searched.
    """
    if not (math.isfinite(threshold) and threshold > 1.0):
        raise ToolError(f"threshold must be a finite ratio above 1 (e.g. 1.1), got {threshold}")
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ToolError(f"alpha must be a probability between 0 and 1 (e.g. 0.01), got {alpha}")
    if detector not in ("samples", "asv"):
        raise ToolError(f"detector must be 'samples' or 'asv', got {detector!r}")
    all_series, _ = split_judgeable(all_series)
    used = "samples" if detector == "samples" and load_samples_detector() is not None else "asv"
    found = []
    for series in all_series:
        points, steps = series_steps(series, used, alpha)
        found.extend(_regressions_of(series, points, steps, threshold))
    return found, used
