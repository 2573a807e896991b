"""Side-by-side evaluation of change-point detectors: this project's, asv's ``step_detect`` and
Apache Otava 0.8.0, on the simulated grid of ``tools.lib.simulate`` and on the repository's real
series with a planted step.

Scoring per history, against the planted boundaries: **found** = every planted boundary reported
within one commit, in the right direction; **exact** = every one at its commit; **false** = any
reported step further than one commit from every planted boundary (on a history without a step:
any step at all). Otava's significance level is chosen per row, from ``OTAVA_P``, as the largest
whose false-flag rate on the same noise without a step is at most this project's (its rates are then
compared at an equal or lower false-flag rate); when even the smallest flags more, the smallest.

Otava runs in its own interpreter (``tools/lib/otava_bridge.py``; default ``.venv-otava/bin/python``);
without it the Otava column says "unavailable".
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from tools.lib.detect import asv_steps, detect_steps, detectable_step
from tools.lib.errors import ToolError
from tools.lib.simulate import GRID, History, Scenario, null_of, plant_step, simulate

__all__ = ["Score", "Row", "evaluate", "markdown_table", "OTAVA_P", "DEFAULT_OTAVA_PYTHON", "real_series",
           "series_noise_sd", "within_reach"]

OTAVA_P = (0.0001, 0.001, 0.003, 0.01, 0.03, 0.1)
DEFAULT_OTAVA_PYTHON = ".venv-otava/bin/python"
BRIDGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "otava_bridge.py")
# Units of the real series that measure speed or size (not accuracy); the first set is higher-is-better.
HIGHER_IS_BETTER = frozenset({"tokens", "tokens/s", "TFLOP/s"})
PERFORMANCE_UNITS = frozenset({"seconds", "ms", "bytes", "MiB"}) | HIGHER_IS_BETTER
# A planted step counts as within a real series' reach when the detector should find it this often.
REACH_POWER = 0.95

Found = list[tuple[int, str]]


@dataclass
class Score:
    trials: int = 0
    found: int = 0
    exact: int = 0
    false: int = 0

    def add(self, reported: Found, truth: list[tuple[int, str]]) -> None:
        self.trials += 1
        self.found += all(any(abs(i - at) <= 1 and d == want for i, d in reported) for at, want in truth) if truth else 0
        self.exact += all(any(i == at and d == want for i, d in reported) for at, want in truth) if truth else 0
        self.false += any(all(abs(i - at) > 1 for at, _ in truth) for i, _ in reported)

    def percent(self, count: int) -> float:
        return 100.0 * count / self.trials if self.trials else float("nan")

    def cells(self, planted: bool, with_false: bool = True) -> str:
        false = f"{self.percent(self.false):.1f}"
        if not planted:
            return f"false {false}"
        text = f"{self.percent(self.found):.1f} / {self.percent(self.exact):.1f}"
        return f"{text} / {false}" if with_false else text


@dataclass
class Row:
    name: str
    planted: bool
    ours: Score
    asv: Score
    otava: Optional[Score]
    otava_p: Optional[float] = None
    ours_null_false: Optional[float] = None  # % of the no-step twin flagged (the level Otava is matched to)
    otava_null_false: Optional[float] = None
    with_false: bool = True
    extra: dict = field(default_factory=dict)


def _ours(history: History) -> Found:
    commits = [str(i) for i in range(len(history.samples))]
    return [(s.index, s.direction) for s in detect_steps(commits, history.samples)]


def _medians(history: History) -> list[Optional[float]]:
    return [None if s is None else float(np.median(s)) for s in history.samples]


def _asv(history: History) -> Found:
    commits = [str(i) for i in range(len(history.samples))]
    return [(s.index, s.direction) for s in asv_steps(commits, _medians(history))]


def otava_available(python: Optional[str]) -> Optional[str]:
    """Otava's version when ``python`` can run it, else None."""
    if not python or not os.path.exists(python):
        return None
    done = subprocess.run([python, BRIDGE], input=json.dumps({"series": [], "p": []}), capture_output=True, text=True)
    return json.loads(done.stdout)["version"] if done.returncode == 0 else None


def _otava(python: str, histories: list[History], ps: tuple[float, ...]) -> list[list[Found]]:
    """Per history, per p: Otava's change points on the per-commit medians."""
    request = json.dumps({"series": [_medians(h) for h in histories], "p": list(ps), "window": 50})
    done = subprocess.run([python, BRIDGE], input=request, capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolError(f"Otava failed under {python}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return [[[(int(i), d) for i, d in per_p] for per_p in per_history] for per_history in json.loads(done.stdout)["found"]]


def _score_all(histories: list[History], detector: Callable[[History], Found]) -> Score:
    score = Score()
    for history in histories:
        score.add(detector(history), history.truth)
    return score


def _otava_scores(python: str, histories: list[History]) -> list[Score]:
    scores = [Score() for _ in OTAVA_P]
    for history, per_p in zip(histories, _otava(python, histories, OTAVA_P)):
        for score, reported in zip(scores, per_p):
            score.add(reported, history.truth)
    return scores


def _pick_p(ours_false: float, otava_false: list[float]) -> int:
    """Index into OTAVA_P: the largest p whose false-flag rate is <= ours, else the smallest p."""
    allowed = [i for i, f in enumerate(otava_false) if f <= ours_false]
    return max(allowed) if allowed else 0


def evaluate_scenario(scenario: Scenario, trials: int, seed: int, otava_python: Optional[str]) -> Row:
    rng = np.random.default_rng(seed)
    histories = [simulate(scenario, rng) for _ in range(trials)]
    ours, theirs = _score_all(histories, _ours), _score_all(histories, _asv)
    row = Row(scenario.name, scenario.planted, ours, theirs, None)
    null_histories = [simulate(null_of(scenario), rng) for _ in range(trials)] if scenario.planted else histories
    ours_null = _score_all(null_histories, _ours) if scenario.planted else ours
    row.ours_null_false = ours_null.percent(ours_null.false)
    if otava_python:
        null_scores = _otava_scores(otava_python, null_histories)
        pick = _pick_p(ours_null.false, [s.false for s in null_scores])
        row.otava_p = OTAVA_P[pick]
        row.otava_null_false = null_scores[pick].percent(null_scores[pick].false)
        row.otava = _otava_scores(otava_python, histories)[pick] if scenario.planted else null_scores[pick]
    return row


def real_series(results_dir: str, machine: str, min_commits: int = 8) -> list[tuple[str, list[Optional[float]]]]:
    """(label, values) of every speed/size series of ``machine`` with ``min_commits`` measured commits,
    oldest first, turned lower-is-better (throughput inverted)."""
    from tools.lib.series import series_from_results

    out = []
    for s in series_from_results(results_dir):
        if s.machine != machine or s.unit not in PERFORMANCE_UNITS:
            continue
        values = [p.value if p.value is not None and p.value == p.value and p.value > 0 else None for p in s.points]
        if s.unit in HIGHER_IS_BETTER:
            values = [None if v is None else 1.0 / v for v in values]
        if sum(v is not None for v in values) >= min_commits:
            out.append((f"{s.benchmark} {s.label}", values))
    return out


def series_noise_sd(values: list[Optional[float]]) -> float:
    """sd of one commit's log-level in a real series, from the median absolute difference of
    successive measured commits (its real steps barely move it)."""
    logs = np.log([v for v in values if v is not None])
    diffs = np.abs(np.diff(logs))
    return float(np.median(diffs)) / (0.6745 * np.sqrt(2.0)) if diffs.size else 0.0


def within_reach(values: list[Optional[float]], at: int, factor: float) -> bool:
    """Whether a ``factor`` step at commit ``at`` is above the series' noise floor: the smallest
    step the detector finds with ``REACH_POWER`` probability (``detectable_step``, the goal's 95 %)
    for this many measured commits either side, at the series' own commit-to-commit noise, is at
    most ``factor``."""
    present = [i for i, v in enumerate(values) if v is not None]
    before = sum(i < at for i in present)
    return detectable_step(series_noise_sd(values), before, len(present) - before, len(present),
                           power=REACH_POWER) <= factor - 1.0


def evaluate_real(name: str, series: list[tuple[str, list[Optional[float]]]], plants: int, seed: int,
                  otava_python: Optional[str], otava_p: Optional[float]) -> list[Row]:
    """Each real series with a 1.3x step planted ``plants`` times at random commits: one row over
    every plant, one over the plants above the series' noise floor (``within_reach``)."""
    rng = np.random.default_rng(seed)
    histories, reachable = [], []
    for _, values in series:
        for _ in range(plants):
            history = plant_step(values, 1.3, rng)
            histories.append(history)
            reachable.append(within_reach(values, history.truth[0][0], 1.3))
    ours, theirs = [_ours(h) for h in histories], [_asv(h) for h in histories]
    otava = None
    if otava_python and otava_p is not None:
        column = OTAVA_P.index(otava_p)
        otava = [per_p[column] for per_p in _otava(otava_python, histories, OTAVA_P)]
    rows = []
    for label, keep in ((f"{name}, every plant", [True] * len(histories)),
                        (f"{name}, plants above the series' noise floor", reachable)):
        picked = [i for i, k in enumerate(keep) if k]
        row = Row(label, True, _score_found(ours, histories, picked), _score_found(theirs, histories, picked), None,
                  with_false=False)
        row.extra.update(series=len(series), plants=len(picked), of=len(histories))
        if otava is not None:
            row.otava, row.otava_p = _score_found(otava, histories, picked), otava_p
        rows.append(row)
    return rows


def _score_found(reported: list[Found], histories: list[History], picked: list[int]) -> Score:
    score = Score()
    for i in picked:
        score.add(reported[i], histories[i].truth)
    return score


def evaluate(trials: int, seed: int, otava_python: Optional[str], results_dir: Optional[str],
             plants: int = 8, grid: tuple[Scenario, ...] = GRID,
             progress: Callable[[str], None] = lambda _: None) -> tuple[list[Row], dict]:
    """Every grid row (with its no-step twin where it has a step), then the real series."""
    version = otava_available(otava_python)
    python = otava_python if version else None
    rows: list[Row] = []
    nulls_seen: set[Scenario] = set()
    start = time.perf_counter()
    for k, scenario in enumerate(grid):
        twin = null_of(scenario) if scenario.planted else scenario
        if twin not in nulls_seen:
            nulls_seen.add(twin)
            rows.append(evaluate_scenario(twin, trials, seed + 1000 * k + 1, python))
            progress(rows[-1].name)
        if scenario.planted:
            rows.append(evaluate_scenario(scenario, trials, seed + 1000 * k, python))
            progress(rows[-1].name)
    if results_dir:
        reference_p = rows[0].otava_p  # Otava at the level matched on the first row's noise
        for machine, label in (("cpu-amd-epyc-2c", "CPU"), ("h100-80gb-hbm3x1", "H100")):
            series = real_series(results_dir, machine)
            if series:
                rows.extend(evaluate_real(f"the repo's real {label} series ({machine}) with a 1.3x step planted",
                                          series, plants, seed + 7, python, reference_p))
                progress(rows[-1].name)
    meta = {"trials": trials, "seed": seed, "otava": version, "seconds": time.perf_counter() - start,
            "plants": plants}
    return rows, meta


def markdown_table(rows: list[Row], meta: dict) -> str:
    """The table: found within +-1 / exact / false-flag %, per detector."""
    otava_head = f"Otava {meta['otava']}" if meta.get("otava") else "Otava (unavailable: not installed)"
    lines = [f"| noise | attnbench | asv step_detect | {otava_head} | Otava p |", "|---|---|---|---|---|"]
    for row in rows:
        otava = row.otava.cells(row.planted, row.with_false) if row.otava else "-"
        p = f"{row.otava_p:g}" if row.otava_p is not None else "-"
        name = row.name + (f" ({row.extra['plants']} of {row.extra['of']} plants, {row.extra['series']} series)"
                           if "series" in row.extra else "")
        lines.append(f"| {name} | {row.ours.cells(row.planted, row.with_false)} | "
                     f"{row.asv.cells(row.planted, row.with_false)} | {otava} | {p} |")
    return "\n".join(lines)
