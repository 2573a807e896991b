"""Regression verdicts: what the detector found in the results, and what re-measurement confirmed.

A verdict is one step the wrong way in one (machine, benchmark, params) series: ``candidate`` when
the detector found it in the history, ``confirmed`` once an interleaved re-measurement of the commit
and its parent agreed (``tools.bisect``; stored in ``results/confirmations/<machine>.json``),
``fixed`` when a later step brought the series back, ``not enough data`` for a series the
detector cannot judge (fewer than three measured commits, or no usable value). Candidates that a
re-measurement rejected are not verdicts.

``results/confirmations/`` holds no ``machine.json``, so asv does not read it as results.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Optional

from tools.lib.detect import DEFAULT_ALPHA
from tools.lib.errors import ToolError
from tools.lib.files import write_text_atomic
from tools.lib.regressions import Regression, series_steps
from tools.lib.series import Series, cannot_judge, series_from_results

__all__ = ["Verdict", "Confirmation", "verdicts_for", "verdicts_from_series", "with_confirmations", "load_confirmations",
           "record_confirmation", "confirmations_path", "STATUSES", "FIX_TOLERANCE"]

STATUSES = ("confirmed", "candidate", "fixed", "not enough data")
# A regression counts as fixed when the newest level is within this factor of the level before it.
FIX_TOLERANCE = 1.02
CONFIRMATIONS = "confirmations"
# Steps smaller than this are not verdicts: deterministic series (memory) make 0.3 % changes
# significant, and nobody bisects them.
MIN_FACTOR = 1.05


@dataclass(frozen=True)
class Verdict:
    machine: str
    benchmark: str
    params: tuple[str, ...]  # parameter values in the benchmark's order, as in the series labels
    commit: str  # the first bad commit (full sha)
    parent: Optional[str]  # the last good measured commit before it (None when not known)
    factor: float  # > 1: worse by this factor in the benchmark's own direction
    p_value: Optional[float]  # the confirmation's paired test when confirmed, else the detector's
    status: str  # one of STATUSES
    noise_floor: Optional[float]  # the benchmark's minimum detectable effect, a fraction (tools.lib.noise)


@dataclass(frozen=True)
class Confirmation:
    """One interleaved re-measurement of ``commit`` against ``parent`` (``tools.bisect``)."""

    benchmark: str
    params: tuple[str, ...]
    commit: str
    parent: str
    factor: float  # median of the commit's rounds / the parent's, in the benchmark's own direction
    p_value: float
    confirmed: bool
    rounds: int
    candidate: Optional[str] = None  # the detector's first bad commit when bisection moved it
    date: float = 0.0  # seconds since the epoch


def confirmations_path(results_dir: str, machine: str) -> str:
    return os.path.join(results_dir, CONFIRMATIONS, f"{machine}.json")


def load_confirmations(results_dir: str, machine: str) -> list[Confirmation]:
    """Every confirmation recorded for ``machine`` (oldest first); [] when there is none."""
    path = confirmations_path(results_dir, machine)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return [Confirmation(**{**entry, "params": tuple(entry["params"])}) for entry in data["confirmations"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolError(f"{path} is not a confirmations file ({exc}); move it away to start a new one") from None


def record_confirmation(results_dir: str, machine: str, confirmation: Confirmation) -> str:
    """Append ``confirmation`` to the machine's file (written atomically); returns the path."""
    existing = load_confirmations(results_dir, machine)
    if not confirmation.date:
        confirmation = Confirmation(**{**asdict(confirmation), "date": time.time()})
    path = confirmations_path(results_dir, machine)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    entries = [asdict(c) for c in [*existing, confirmation]]
    write_text_atomic(path, json.dumps({"version": 1, "confirmations": entries}, indent=1) + "\n")
    return path


def _noise_floors(results_dir: str, machine: str) -> dict:
    try:
        from tools.lib.noise import load_noise_floors
    except ImportError:
        return {}
    try:
        floors = load_noise_floors(results_dir, machine) or {}
    except (OSError, ValueError, ToolError):
        return {}
    # The noise file keeps asv's param strings ("'ImprovedDilatedAttention'"); series labels do not.
    return {(name, tuple(str(p).strip("'") for p in params)): floor for (name, params), floor in floors.items()}


def _params_of(series: Series) -> tuple[str, ...]:
    return tuple(series.params.values())


def _latest_confirmation(confirmations: list[Confirmation], benchmark: str, params: tuple[str, ...],
                         commits: set[str]) -> Optional[Confirmation]:
    matching = [c for c in confirmations if c.benchmark == benchmark and c.params == params
                and (c.commit in commits or c.candidate in commits)]
    return matching[-1] if matching else None


def verdicts_from_series(all_series: list[Series], results_dir: Optional[str] = None,
                         alpha: float = DEFAULT_ALPHA, min_factor: float = MIN_FACTOR) -> list[Verdict]:
    """Verdicts for the given series; confirmations and noise floors are read from ``results_dir``."""
    verdicts: list[Verdict] = []
    by_machine: dict[str, tuple[list[Confirmation], dict]] = {}
    for series in all_series:
        if series.machine not in by_machine:
            by_machine[series.machine] = (
                load_confirmations(results_dir, series.machine) if results_dir else [],
                _noise_floors(results_dir, series.machine) if results_dir else {})
        confirmations, floors = by_machine[series.machine]
        params = _params_of(series)
        floor = floors.get((series.benchmark, params))
        mde = getattr(floor, "mde", None) if floor is not None else None
        prior = getattr(floor, "between_cv", None) if floor is not None and getattr(floor, "stable", True) else None
        prior = prior if prior is not None and math.isfinite(prior) and prior > 0 else None
        points, steps = ([], []) if cannot_judge(series) else series_steps(series, "samples", alpha, prior_sd=prior)
        if len(points) < 3:
            newest = series.points[-1].commit if series.points else ""
            verdicts.append(Verdict(series.machine, series.benchmark, params, newest, None, 1.0, None,
                                    "not enough data", mde))
            continue
        newest_level = steps[-1].level_after if steps else None
        for step in steps:
            if step.direction != "slower" or step.ratio < min_factor:
                continue
            commit, parent = points[step.index].commit, points[step.index - 1].commit
            record = _latest_confirmation(confirmations, series.benchmark, params, {commit})
            if record is not None and not record.confirmed:
                continue  # re-measured: within noise
            fixed = (newest_level is not None and step.level_before is not None
                     and newest_level <= FIX_TOLERANCE * step.level_before)
            if record is not None:
                status = "fixed" if fixed else "confirmed"
                verdicts.append(Verdict(series.machine, series.benchmark, params, record.commit, record.parent,
                                        record.factor, record.p_value, status, mde))
            else:
                verdicts.append(Verdict(series.machine, series.benchmark, params, commit, parent, step.ratio,
                                        step.p_value, "fixed" if fixed else "candidate", mde))
    return verdicts


def with_confirmations(found: list[Regression], results_dir: str) -> list[Regression]:
    """``found`` with each regression's status ("confirmed" once re-measured and confirmed; those a
    re-measurement rejected are dropped) and its benchmark's noise floor, from ``results_dir``."""
    cache: dict[str, tuple[list[Confirmation], dict]] = {}
    out = []
    for r in found:
        if r.machine not in cache:
            cache[r.machine] = (load_confirmations(results_dir, r.machine), _noise_floors(results_dir, r.machine))
        confirmations, floors = cache[r.machine]
        params = tuple(r.params.values())
        record = _latest_confirmation(confirmations, r.benchmark, params, {r.first_bad})
        floor = floors.get((r.benchmark, params))
        mde = getattr(floor, "mde", None) if floor is not None else None
        if record is not None and not record.confirmed:
            continue
        if record is not None:
            r = replace(r, status="confirmed", first_bad=record.commit, last_good=record.parent,
                        ratio=record.factor, p_value=record.p_value)
        out.append(replace(r, noise_floor=mde))
    return out


def verdicts_for(results_dir: str, machine: Optional[str] = None, repo: Optional[str] = None) -> list[Verdict]:
    """Every verdict in an asv results directory (one machine's when ``machine`` is given).

    ``repo``: a git checkout to order commits as asv does; default: the commit dates in the results.
    """
    all_series = series_from_results(results_dir, repo)
    if machine is not None:
        all_series = [s for s in all_series if s.machine == machine]
    return verdicts_from_series(all_series, results_dir)
