"""The paired test that turns a candidate step into a confirmed one.

A confirmation run measures a commit and its parent (or base and head of a pull request) in one
``asv run`` with several rounds: asv interleaves the rounds of the commits (A B, then B A, ...), each
round in a fresh process. Round ``r`` of one commit and round ``r`` of the other ran next to each
other in time, on the same machine state, so they form a pair; a slow spell of a shared machine or
a drifting clock hits both members of a pair alike and cancels in their ratio.

The test: per round, the median of its samples; per pair, the log of (commit / parent) in the
benchmark's own direction (throughput inverted, so > 0 is worse); a one-sided paired t-test that
the mean log ratio is > 0. ``factor`` is exp(median log ratio). Confirmed needs p < ``alpha`` and
factor >= ``min_factor``.
"""
from __future__ import annotations

import itertools
import math
import re
import statistics
from dataclasses import dataclass
from typing import Optional

from scipy import stats

from tools.lib.errors import ToolError
from tools.lib.series import iter_results_checked

__all__ = ["Judgement", "round_medians", "paired_test", "judge", "samples_for"]


@dataclass(frozen=True)
class Judgement:
    label: str  # benchmark name, with "(params)" for one parameter combination
    factor: float  # > 1: the commit is worse than its parent by this factor, in the benchmark's direction
    p_value: float
    confirmed: bool
    rounds: int


def round_medians(samples: list[float], repeat: int, rounds: int) -> Optional[list[float]]:
    """Medians of the last ``rounds`` blocks of ``repeat`` samples (the ones the confirmation run
    appended: asv appends each round's samples after older ones); None if there are too few."""
    ours = [s for s in samples[-repeat * rounds:] if s is not None and 0 < s < math.inf]
    if len(samples) < repeat * rounds or len(ours) < repeat * rounds:
        return None
    return [statistics.median(ours[i:i + repeat]) for i in range(0, len(ours), repeat)]


def paired_test(parent: list[float], commit: list[float], higher_is_better: bool = False) -> tuple[float, float]:
    """(factor, one-sided p) for round medians paired by position; > 1 / small p: the commit is worse.

    Pairs with identical members carry no evidence either way; all identical gives (1.0, 1.0).
    """
    if len(parent) != len(commit) or len(parent) < 2:
        raise ToolError(f"a paired test needs two equally long lists of 2+ rounds, got {len(parent)} and {len(commit)}")
    sign = -1.0 if higher_is_better else 1.0
    logs = [sign * (math.log(c) - math.log(p)) for p, c in zip(parent, commit)]
    factor = math.exp(statistics.median(logs))
    if all(x == logs[0] for x in logs):
        return factor, (0.0 if logs[0] > 0 else 1.0)
    result = stats.ttest_1samp(logs, 0.0, alternative="greater")
    return factor, float(result.pvalue)


def judge(before: dict[str, list[float]], after: dict[str, list[float]], repeat: int, rounds: int,
          alpha: float, min_factor: float, higher_is_better: frozenset[str] = frozenset()) -> Judgement:
    """The most significant slowdown among the entries (label -> samples) both commits have.

    ``higher_is_better``: labels whose benchmark is a throughput or a capacity. Raises ToolError
    when no entry has ``repeat * rounds`` new samples on both sides.
    """
    found = []
    for label in sorted(set(before) & set(after)):
        a = round_medians(before[label], repeat, rounds)
        b = round_medians(after[label], repeat, rounds)
        if a is None or b is None:
            continue
        factor, p_value = paired_test(a, b, label in higher_is_better)
        found.append(Judgement(label, factor, p_value, p_value < alpha and factor >= min_factor, rounds))
    if not found:
        raise ToolError(f"no benchmark has {repeat * rounds} new samples on both commits; "
                        "nothing to test (did the benchmark fail? see asv's output above)")
    return min(found, key=lambda j: (not j.confirmed, j.p_value, -j.factor))


def samples_for(results_dir: str, commit: str, machine: str | None, pattern: str) -> dict[str, list[float]]:
    """All samples recorded for ``commit``, per benchmark entry ('name' or 'name(params)') matching."""
    found: dict[str, list[float]] = {}
    for result in iter_results_checked(results_dir, machine):
        if result.commit_hash != commit:
            continue
        for key in result.get_all_result_keys():
            params = result.get_result_params(key)
            combos = list(itertools.product(*params)) if params else [()]
            for combo, samples in zip(combos, result.get_result_samples(key, params)):
                label = f"{key}({', '.join(combo)})" if combo else key
                if samples and (re.search(pattern, label) or key == pattern):
                    # A time of 0, a negative or a non-finite one is no measurement (ratios need > 0).
                    found.setdefault(label, []).extend(s for s in samples if s is not None and 0 < s < math.inf)
    return found
