"""Noise floors: how much a benchmark moves when nothing changed, and the smallest slowdown the
suite's detector would catch, per parameter set.

Input: several asv result files of the same commit on the same machine, each from its own
``asv run --record-samples`` (a *run*: its own processes, rounds and samples). Per parameter set,
on the natural log of the samples (so spreads read as relative: 0.02 = 2%):

- ``within_cv``: pooled standard deviation of a run's samples around that run's mean
  (what ``asv``'s own ± shows);
- ``between_cv``: standard deviation of the runs' levels (mean log-sample of each run): what a
  second run of the same commit moves by, the within-run spread averaged down included;
- ``mde``: minimum detectable effect, the smallest slowdown (as a fraction, 0.04 = 4%) of one commit
  against another that a one-sided test at the detector's ``alpha`` catches with probability
  ``power``, when each commit's level has the standard deviation measured here::

      level_sd = max(between_cv, within_cv / sqrt(n))      # n: samples per run (per commit)
      mde      = exp((z[1 - alpha / tests] + z[power]) * level_sd * sqrt(1 + 1 / reference_commits)) - 1

  ``reference_commits`` is how many commits of the old level the new one is compared with (1:
  two adjacent commits, as ``asv continuous`` and a bisection step do); ``tests`` a Bonferroni
  count. ``DetectorSettings`` holds the four; ``detector_settings()`` takes ``alpha`` from the
  detector in ``tools.lib.detect``.
- ``stable``: every run produced the set (a benchmark whose warm-up never settled fails, so
  ``stable`` is False for it).

The committed file is ``results/noise/<machine>.json`` (a folder without ``machine.json``, which
asv ignores)::

    {"machine": str, "commit": full sha, "date": ISO 8601, "runs": int, "profile": str,
     "benchmarks": {"<asv benchmark name>": [{"params": [asv's param strings], "median": float,
         "within_cv": float, "between_cv": float, "mde": float, "stable": bool}, ...]}}

(``median`` is in the benchmark's unit: seconds for ``time_*``; a figure that cannot be computed
is ``null``.)
"""
from __future__ import annotations

import inspect
import itertools
import json
import math
import os
import statistics
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from scipy import stats

from tools.lib.errors import ToolError
from tools.lib.files import write_text_atomic

__all__ = ["NoiseFloor", "SetNoise", "DetectorSettings", "detector_settings",
           "minimum_detectable_effect", "set_noise", "RunSets", "read_run", "noise_document",
           "write_noise_file", "noise_path", "load_noise_floors", "TwoRunRow", "two_run_rows",
           "two_run_summary", "two_run_markdown", "floor_markdown"]

Key = tuple[str, tuple[str, ...]]  # (asv benchmark name, asv's param strings)
RunSets = dict[Key, Optional[list[float]]]  # samples per set; None: the set failed in that run


@dataclass(frozen=True)
class NoiseFloor:
    """One parameter set's noise as read back from a noise file (relative units: 0.02 = 2%)."""

    within_cv: float
    between_cv: float
    mde: float
    stable: bool
    runs: int


@dataclass(frozen=True)
class DetectorSettings:
    """The test the minimum detectable effect assumes (see the module docstring's formula)."""

    alpha: float = 0.01
    power: float = 0.8
    tests: int = 1
    reference_commits: int = 1

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and 0 < self.power < 1 and self.tests >= 1 and self.reference_commits >= 1):
            raise ValueError(f"invalid detector settings {self}")

    @property
    def z(self) -> float:
        return float(stats.norm.ppf(1 - self.alpha / self.tests) + stats.norm.ppf(self.power))


def detector_settings() -> DetectorSettings:
    """The detector's own ``alpha`` (``tools.lib.detect.detect_steps``'s default), power 0.8."""
    try:
        from tools.lib import detect

        alpha = getattr(detect, "DEFAULT_ALPHA", None)
        if alpha is None:
            alpha = inspect.signature(detect.detect_steps).parameters["alpha"].default
        return DetectorSettings(alpha=float(alpha))
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return DetectorSettings()


def minimum_detectable_effect(level_sd: float, settings: DetectorSettings) -> float:
    """Smallest slowdown (fraction) a one-sided test catches with the settings' power, when each
    commit's level (mean log-sample) has standard deviation ``level_sd``."""
    if not math.isfinite(level_sd) or level_sd < 0:
        return math.nan
    return math.expm1(settings.z * level_sd * math.sqrt(1 + 1 / settings.reference_commits))


@dataclass(frozen=True)
class SetNoise:
    """One parameter set's figures over the runs (see the module docstring)."""

    median: float
    within_cv: float
    between_cv: float
    mde: float
    stable: bool
    runs: int


def set_noise(runs: Sequence[Optional[Sequence[float]]], settings: DetectorSettings) -> SetNoise:
    """Figures of one parameter set from its samples in each run (``None``/empty: the run failed it)."""
    measured = [[float(x) for x in r] for r in runs if r]
    for samples in measured:
        if not all(math.isfinite(x) and x > 0 for x in samples):
            raise ValueError(f"samples must be finite and > 0, got {samples}")
    stable = len(measured) == len(runs) and len(measured) > 0
    if not measured:
        return SetNoise(math.nan, math.nan, math.nan, math.nan, False, len(runs))
    logs = [[math.log(x) for x in samples] for samples in measured]
    levels = [statistics.fmean(y) for y in logs]
    squares = sum(sum((v - level) ** 2 for v in y) for y, level in zip(logs, levels))
    df = sum(len(y) - 1 for y in logs)
    within = math.sqrt(squares / df) if df > 0 else math.nan
    between = statistics.stdev(levels) if len(levels) >= 2 else math.nan
    n = statistics.fmean(len(y) for y in logs)
    candidates = [v for v in (between, within / math.sqrt(n) if math.isfinite(within) else math.nan)
                  if math.isfinite(v)]
    level_sd = max(candidates) if candidates else math.nan
    median = statistics.median(x for samples in measured for x in samples)
    return SetNoise(median, within, between, minimum_detectable_effect(level_sd, settings), stable, len(runs))


def read_run(path: str) -> tuple[dict, RunSets]:
    """(header, samples per set) of one asv result file.

    ``header``: ``commit`` (full sha), ``machine``, ``measured`` (when its last benchmark started,
    ms since the epoch; None if unknown), ``env``. Sets asv
    skipped (NaN) are left out; a failed set maps to None; a set with a value but no recorded
    samples (a run without ``--record-samples``) maps to ``[value]``.
    """
    from asv.results import Results
    from asv.util import UserError

    try:
        result = Results.load(path)
    except (UserError, OSError, ValueError, KeyError) as err:
        raise ToolError(f"{path}: not an asv result file ({err})") from None
    started = [t for t in result.started_at.values() if isinstance(t, (int, float))]
    header = {"commit": result.commit_hash, "machine": result.params.get("machine"),
              "measured": max(started) if started else None, "env": result.env_name}
    sets: RunSets = {}
    for name in sorted(result.get_all_result_keys()):
        params = result.get_result_params(name)
        combos = list(itertools.product(*params)) if params else [()]
        values = result.get_result_value(name, params)
        samples = result.get_result_samples(name, params)
        if not params:  # an unparameterised benchmark: one value, not a list
            values, samples = [values], [samples]
        if samples is None:
            samples = [None] * len(combos)
        for combo, value, chunk in zip(combos, values, samples):
            if value is not None and isinstance(value, float) and math.isnan(value):
                continue  # skipped: n/a at this commit or on this device
            if value is None:
                sets[(name, tuple(combo))] = None
            else:
                sets[(name, tuple(combo))] = [float(x) for x in chunk] if chunk else [float(value)]
    return header, sets


def noise_document(runs: Sequence[RunSets], machine: str, commit: str, date: str, profile: str,
                   settings: DetectorSettings) -> dict:
    """The noise file's content for ``runs`` (each ``read_run``'s sets of one commit)."""
    keys = sorted({key for run in runs for key in run})
    benchmarks: dict[str, list[dict]] = {}
    for name, params in keys:
        noise = set_noise([run.get((name, params)) for run in runs], settings)
        benchmarks.setdefault(name, []).append({
            "params": list(params), "median": _finite(noise.median), "within_cv": _finite(noise.within_cv),
            "between_cv": _finite(noise.between_cv), "mde": _finite(noise.mde), "stable": noise.stable})
    return {"machine": machine, "commit": commit, "date": date, "runs": len(runs), "profile": profile,
            "detector": {"alpha": settings.alpha, "power": settings.power, "tests": settings.tests,
                         "reference_commits": settings.reference_commits},
            "benchmarks": benchmarks}


def _finite(value: float) -> Optional[float]:
    return float(value) if math.isfinite(value) else None


def noise_path(results_dir: str, machine: str) -> str:
    return os.path.join(results_dir, "noise", f"{machine}.json")


def write_noise_file(path: str, document: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text_atomic(path, json.dumps(document, indent=1, sort_keys=False) + "\n")


def load_noise_floors(results_dir: str, machine: str) -> dict[Key, NoiseFloor]:
    """Noise floors of ``machine`` keyed by (asv benchmark name, param strings): ``{}`` when the
    machine has no noise file; ``ToolError`` when the file is not a noise file. Figures that could
    not be computed read as NaN."""
    path = noise_path(results_dir, machine)
    try:
        with open(path, encoding="utf-8") as fh:
            document = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ToolError(f"{path}: not a readable noise file ({err})") from None
    try:
        runs = int(document["runs"])
        floors: dict[Key, NoiseFloor] = {}
        for name, entries in document["benchmarks"].items():
            for entry in entries:
                figures = [math.nan if entry[k] is None else float(entry[k])
                           for k in ("within_cv", "between_cv", "mde")]
                floors[(name, tuple(str(p) for p in entry["params"]))] = NoiseFloor(
                    *figures, stable=bool(entry["stable"]), runs=runs)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ToolError(f"{path}: not a noise file (expected 'runs' and 'benchmarks' with params, "
                        f"within_cv, between_cv, mde, stable per set; {type(err).__name__}: {err})") from None
    return floors


@dataclass(frozen=True)
class TwoRunRow:
    """One set measured in two runs: asv's value in each and their relative difference."""

    name: str
    params: tuple[str, ...]
    first: float
    second: float

    @property
    def difference(self) -> float:
        """max / min - 1: symmetric, 0.05 = the two runs differ by 5%."""
        return max(self.first, self.second) / min(self.first, self.second) - 1.0


def two_run_rows(first: RunSets, second: RunSets) -> list[TwoRunRow]:
    """Sets with a value in both runs; the value is the median of the run's samples (asv's figure)."""
    rows = []
    for key in sorted(set(first) & set(second)):
        a, b = first[key], second[key]
        if a and b:
            rows.append(TwoRunRow(key[0], key[1], statistics.median(a), statistics.median(b)))
    return rows


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)  # linear interpolation between order statistics
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def two_run_summary(rows: Iterable[TwoRunRow]) -> dict[str, float]:
    """count, median, p90, p95 and max of the rows' differences."""
    diffs = [row.difference for row in rows]
    return {"count": len(diffs), "median": _quantile(diffs, 0.5), "p90": _quantile(diffs, 0.9),
            "p95": _quantile(diffs, 0.95), "max": _quantile(diffs, 1.0)}


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.1f}%"


def _human(value: float, unit_seconds: bool) -> str:
    if not unit_seconds:
        return f"{value:.4g}"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if value >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e-9:.4g} ns"


def two_run_markdown(rows: Sequence[TwoRunRow], title: str, notes: Sequence[str] = ()) -> str:
    """A markdown report: overall and per-benchmark summaries, per-group medians (the first
    parameter: implementation or backend), then every set."""
    lines = [f"# {title}", ""]
    lines += [f"{note}" for note in notes]
    if notes:
        lines.append("")
    lines += ["Difference of a set: max(run 1, run 2) / min(run 1, run 2) - 1, each run's value the "
              "median of its samples.", "",
              "| benchmark | sets | median | p90 | p95 | worst |", "|---|---|---|---|---|---|"]
    groups: dict[str, list[TwoRunRow]] = {}
    for row in rows:
        groups.setdefault(row.name, []).append(row)
    for name, group in [("all", list(rows))] + sorted(groups.items()):
        s = two_run_summary(group)
        lines.append(f"| {name} | {s['count']} | {_pct(s['median'])} | {_pct(s['p90'])} | "
                     f"{_pct(s['p95'])} | {_pct(s['max'])} |")
    by_first: dict[str, list[TwoRunRow]] = {}
    for row in rows:
        if row.params:
            by_first.setdefault(row.params[0].strip("'"), []).append(row)
    if by_first:
        lines += ["", "| first parameter | sets | median | worst |", "|---|---|---|---|"]
        for value, group in sorted(by_first.items()):
            s = two_run_summary(group)
            lines.append(f"| {value} | {s['count']} | {_pct(s['median'])} | {_pct(s['max'])} |")
    lines += ["", "| benchmark | params | run 1 | run 2 | difference |", "|---|---|---|---|---|"]
    for row in rows:
        seconds = row.name.split(".")[-1].startswith("time_")
        lines.append(f"| {row.name} | {', '.join(p.strip(chr(39)) for p in row.params)} | "
                     f"{_human(row.first, seconds)} | {_human(row.second, seconds)} | {_pct(row.difference)} |")
    return "\n".join(lines) + "\n"


def floor_markdown(document: dict, title: str) -> str:
    """Per benchmark of a noise file: sets, stable sets, median within- and between-run CV, median
    and worst minimum detectable effect, and how many sets would show a 5% / 10% slowdown."""
    detector = document.get("detector", {})
    lines = [f"# {title}", "",
             f"Machine `{document['machine']}`, commit `{document['commit']}`, {document['runs']} runs, "
             f"profile `{document['profile']}`, measured {document['date']}. Minimum detectable effect: "
             f"one commit against {detector.get('reference_commits', 1)} other, one-sided test at "
             f"alpha {detector.get('alpha', 'n/a')}, power {detector.get('power', 'n/a')} "
             f"(tools/lib/noise.py).", "",
             "| benchmark | sets | stable | within CV | between CV | MDE median | MDE worst | MDE <= 5% | MDE <= 10% |",
             "|---|---|---|---|---|---|---|---|---|"]

    def med(values: list) -> float:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else math.nan

    for name, entries in sorted(document["benchmarks"].items()):
        mdes = [e["mde"] for e in entries if e["mde"] is not None]
        lines.append(
            f"| {name} | {len(entries)} | {sum(bool(e['stable']) for e in entries)} | "
            f"{_pct(med([e['within_cv'] for e in entries]))} | {_pct(med([e['between_cv'] for e in entries]))} | "
            f"{_pct(med(mdes))} | {_pct(max(mdes) if mdes else math.nan)} | "
            f"{sum(m <= 0.05 for m in mdes)}/{len(entries)} | {sum(m <= 0.10 for m in mdes)}/{len(entries)} |")
    return "\n".join(lines) + "\n"
