"""Finding regressions (upward steps) in per-commit series, with asv's detector or the sample-aware one.

``asv``: asv's own ``step_detect`` on one value per commit, weighted as ``asv publish`` weights them.
``samples``: ``tools.lib.detect.detect_steps`` (a test on the raw samples of each side of a step).
A regression is reported when after/before >= threshold; ``open`` when the latest value is still
at least ``threshold`` times the last good one. Series whose unit is a throughput or a capacity
(``HIGHER_IS_BETTER_UNITS``) are searched as reciprocals, so a drop is the regression there (asv's
own site cannot tell and lists their rises); their ratio is before/after.
"""
from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import asdict, dataclass, replace

from asv import step_detect

from tools.lib.errors import ToolError, ToolWarning
from tools.lib.series import Point, Series, split_judgeable


@dataclass
class Regression:
    machine: str
    benchmark: str
    params: dict[str, str]
    unit: str
    last_good: str  # full commit hash
    first_bad: str
    before: float  # benchmark unit (seconds, bytes)
    after: float
    ratio: float
    p_value: float | None
    open: bool

    def to_json(self) -> dict:
        return asdict(self)


HIGHER_IS_BETTER_UNITS = frozenset({"tokens", "tokens/s", "TFLOP/s"})


def _reciprocal(x: float | None) -> float | None:
    return 1.0 / x if x else x


def _as_lower_is_better(series: Series) -> Series:
    points = [replace(p, value=_reciprocal(p.value), samples=[_reciprocal(x) for x in p.samples])
              for p in series.points]
    return replace(series, points=points)


def _valid(points: list[Point]) -> list[Point]:
    return [p for p in points if p.value is not None and p.value == p.value]


def _regression(series: Series, good: Point, bad: Point, before: float, after: float,
                p_value: float | None, latest: float, threshold: float) -> Regression:
    return Regression(series.machine, series.benchmark, series.params, series.unit, good.commit, bad.commit,
                      before, after, after / before, p_value, latest >= threshold * before)


def asv_regressions(series: Series, threshold: float) -> list[Regression]:
    """asv's step detection and regression rule (``detect_regressions``) on one value per commit."""
    points = _valid(series.points)
    if len(points) < 2:
        return []
    steps = step_detect.detect_steps([p.value for p in points], [p.weight for p in points])
    _, _, jumps = step_detect.detect_regressions(steps, threshold=max(threshold - 1.0, 0.0))
    found = []
    for good_idx, bad_idx, before, best_after in jumps or []:
        if before > 0 and best_after / before >= threshold:
            found.append(_regression(series, points[good_idx], points[bad_idx], before, best_after, None,
                                     points[-1].value, threshold))
    return found


def _median_of(samples: list[list[float]], start: int, stop: int) -> float:
    return statistics.median(x for commit in samples[start:stop] for x in commit)


def samples_regressions(series: Series, threshold: float, alpha: float, detect_steps) -> list[Regression]:
    """Upward steps from the sample-aware detector; a commit without samples counts its value once.

    Before/after are the medians of all samples of the segments on either side of the step (the
    detector's own ratio); a regression is open while the last segment stays ``threshold`` above.
    """
    points = _valid(series.points)
    if len(points) < 2:
        return []
    samples = [p.samples or [p.value] for p in points]
    steps = sorted(detect_steps([p.commit for p in points], samples, alpha=alpha), key=lambda s: s.index)
    bounds = [0] + [s.index for s in steps] + [len(points)]
    latest = _median_of(samples, bounds[-2], bounds[-1])
    found = []
    for k, step in enumerate(steps):
        if step.ratio < threshold:
            continue
        before = _median_of(samples, bounds[k], bounds[k + 1])
        after = _median_of(samples, bounds[k + 1], bounds[k + 2])
        found.append(_regression(series, points[step.index - 1], points[step.index], before, after,
                                 step.p_value, latest, threshold))
    return found


def load_samples_detector():
    """The sample-aware detector (tools.lib.detect), or None (with a note on stderr) when tools.lib.detect is not there."""
    try:
        from tools.lib.detect import detect_steps
    except ImportError as exc:
        warnings.warn(f"sample-aware detector unavailable ({exc}); using asv's step detection", ToolWarning)
        return None
    return detect_steps


def find_regressions(all_series: list[Series], detector: str, threshold: float,
                     alpha: float = 0.01) -> tuple[list[Regression], str]:
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
    detect_steps = load_samples_detector() if detector == "samples" else None
    used = "samples" if detect_steps is not None else "asv"
    found = []
    for series in all_series:
        flipped = series.unit in HIGHER_IS_BETTER_UNITS
        searched = _as_lower_is_better(series) if flipped else series
        if used == "samples":
            regressions = samples_regressions(searched, threshold, alpha, detect_steps)
        else:
            regressions = asv_regressions(searched, threshold)
        found.extend(replace(r, before=1.0 / r.before, after=1.0 / r.after) if flipped else r
                     for r in regressions)
    return found, used
