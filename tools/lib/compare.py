"""Base against head, every benchmark judged in its own direction: the pull-request gate.

Both commits are measured in one interleaved ``asv run`` (``tools.compare``); here each benchmark
entry (benchmark and parameter combination) gets the paired round-against-round test of
``tools.lib.confirm``. A **regression** is an entry worse by at least ``factor`` (time up, throughput
down) with a p-value below ``alpha`` after a Bonferroni correction over the entries judged, so a
change that touches nothing fails the gate with probability below ``alpha`` however many
benchmarks there are. Improvements are reported the same way, the other way round.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tools.lib.confirm import paired_test, round_medians
from tools.lib.errors import ToolError

__all__ = ["Change", "compare_entries", "to_markdown"]


@dataclass(frozen=True)
class Change:
    label: str  # "bench.Class.name(param, ...)"
    unit: str
    base: float  # median of base's samples, in the unit
    head: float
    factor: float  # > 1: head is worse by this factor in the benchmark's own direction
    p_worse: float  # corrected one-sided p that head is worse
    p_better: float  # corrected one-sided p that head is better
    verdict: str  # "regression" | "improvement" | "unchanged"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])


def compare_entries(base: dict[str, list[float]], head: dict[str, list[float]], units: dict[str, str],
                    higher_is_better: frozenset[str], repeat: int, rounds: int, alpha: float,
                    factor: float) -> list[Change]:
    """One Change per entry both commits measured ``repeat * rounds`` times (label -> samples)."""
    if factor < 1.0:
        raise ToolError(f"factor must be a ratio >= 1 (e.g. 1.1), got {factor}")
    pairs = {}
    for label in sorted(set(base) & set(head)):
        a, b = round_medians(base[label], repeat, rounds), round_medians(head[label], repeat, rounds)
        if a is not None and b is not None:
            pairs[label] = (a, b)
    if not pairs:
        raise ToolError(f"no benchmark has {repeat * rounds} samples on both commits; nothing to compare")
    tests = len(pairs)
    changes = []
    for label, (a, b) in pairs.items():
        flip = label in higher_is_better
        worse, p_worse = paired_test(a, b, flip)
        _, p_better = paired_test(b, a, flip)
        p_worse, p_better = min(1.0, p_worse * tests), min(1.0, p_better * tests)
        verdict = ("regression" if p_worse < alpha and worse >= factor else
                   "improvement" if p_better < alpha and 1.0 / worse >= factor else "unchanged")
        changes.append(Change(label, units.get(label, ""), _median(base[label][-repeat * rounds:]),
                              _median(head[label][-repeat * rounds:]), worse, p_worse, p_better, verdict))
    return changes


def to_markdown(changes: list[Change], base: str, head: str, factor: float, alpha: float,
                human: Optional[callable] = None) -> str:
    """A job-summary table: regressions first (named), then improvements, then a count."""
    show = human or (lambda value, unit: f"{value:.4g} {unit}")
    lines = [f"### Benchmarks: `{head[:8]}` against `{base[:8]}`", "",
             f"Paired, interleaved rounds; a regression is worse by {factor:.2f}x or more with p < {alpha:g} "
             f"(Bonferroni over {len(changes)} entries)."]
    for kind in ("regression", "improvement"):
        rows = sorted((c for c in changes if c.verdict == kind), key=lambda c: -c.factor)
        if not rows:
            continue
        lines += ["", f"**{len(rows)} {kind}(s)**", "", "| Benchmark | Base | Head | Factor (worse) | p |",
                  "|---|---|---|---|---|"]
        for c in rows:
            p = c.p_worse if kind == "regression" else c.p_better
            lines.append(f"| `{c.label}` | {show(c.base, c.unit)} | {show(c.head, c.unit)} | {c.factor:.2f}x | {p:.2g} |")
    unchanged = sum(c.verdict == "unchanged" for c in changes)
    lines += ["", f"{unchanged} of {len(changes)} entries unchanged."]
    return "\n".join(lines) + "\n"
