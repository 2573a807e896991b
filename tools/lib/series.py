"""Per-commit series of one benchmark's results, read from asv results or a published asv site.

A series is one (machine, benchmark, parameter combination): its points are ordered the way asv
orders commits (``git rev-list --all --date-order --reverse`` when a repository is given, else the
commit date stored in each result file). Values are in the benchmark's unit (seconds, bytes).
"""
from __future__ import annotations

import itertools
import os
import statistics
import sys
from dataclasses import dataclass, field

from asv import _stats
from asv import util as asv_util
from asv.benchmarks import Benchmarks
from asv.graph import Graph
from asv.results import iter_results


@dataclass
class Point:
    """One commit's measurement: value (asv's, e.g. median), raw samples, asv's weight."""

    commit: str
    date: int  # ms since the epoch, commit date as asv stores it
    value: float | None
    samples: list[float] = field(default_factory=list)
    weight: float | None = None


@dataclass
class Series:
    machine: str
    benchmark: str
    params: dict[str, str]
    unit: str
    points: list[Point] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())


def load_benchmarks(results_dir: str) -> dict[str, dict]:
    path = Benchmarks.get_benchmark_file_path(results_dir)
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path} not found (run `asv run` or tools.migrate first)")
    data = asv_util.load_json(path, api_version=Benchmarks.api_version)
    return {k: v for k, v in data.items() if k != "version"}


def _param_dicts(bench: dict) -> list[dict[str, str]]:
    names = bench.get("param_names") or []
    combos = itertools.product(*bench["params"]) if bench.get("params") else [()]
    return [dict(zip(names, (v.strip("'") for v in combo))) for combo in combos]


def _combine(points: list[Point]) -> Point:
    """Several result files for one commit (several environments): pool samples, median value."""
    values = [p.value for p in points if p.value is not None]
    samples = [s for p in points for s in p.samples]
    weights = [p.weight for p in points if p.weight is not None]
    return Point(points[0].commit, points[0].date, statistics.median(values) if values else None,
                 samples, sum(weights) / len(weights) if weights else None)


def git_commit_order(repo_path: str) -> dict[str, int]:
    """asv's linear commit order: position in ``git rev-list --all --date-order --reverse``."""
    import git

    shas = git.Repo(repo_path, search_parent_directories=True).git.rev_list(
        "--all", "--date-order", "--reverse").split()
    return {sha: i for i, sha in enumerate(shas)}


def _order(series: dict, order: dict[str, int] | None) -> list[Series]:
    out, unknown = [], set()
    for s in series.values():
        by_commit: dict[str, list[Point]] = {}
        for p in s.points:
            by_commit.setdefault(p.commit, []).append(p)
        points = [_combine(ps) for ps in by_commit.values()]
        if order is not None:
            unknown.update(p.commit for p in points if p.commit not in order)
            points = [p for p in points if p.commit in order]  # not in this repo: cannot be placed
            points.sort(key=lambda p: order[p.commit])
        else:
            points.sort(key=lambda p: (p.date, p.commit))
        s.points = points
        if any(p.value is not None for p in points):  # a parameter combination never measured
            out.append(s)
    if unknown:
        print(f"note: results for {len(unknown)} commit(s) not in the repository were left out "
              f"(e.g. {sorted(unknown)[0][:8]})", file=sys.stderr)
    return sorted(out, key=lambda s: (s.machine, s.benchmark, s.label))


def series_from_results(results_dir: str, repo_path: str | None = None) -> list[Series]:
    """Every (machine, benchmark, params) series found in an asv results directory."""
    benchmarks = load_benchmarks(results_dir)
    series: dict[tuple, Series] = {}
    for result in iter_results(results_dir):
        machine = result.params.get("machine", "?")
        for key in result.get_result_keys(benchmarks):
            bench = benchmarks[key]
            values = result.get_result_value(key, bench["params"])
            samples = result.get_result_samples(key, bench["params"])
            stats = result.get_result_stats(key, bench["params"])
            for params, value, smp, st in zip(_param_dicts(bench), values, samples, stats):
                sid = (machine, key, tuple(params.items()))
                s = series.setdefault(sid, Series(machine, key, params, bench.get("unit", "")))
                s.points.append(Point(result.commit_hash, result.date or 0, value, list(smp or []),
                                      _stats.get_weight(st)))
    return _order(series, git_commit_order(repo_path) if repo_path else None)


def series_from_site(html_dir: str) -> list[Series]:
    """Series from a published asv site (values only: a site keeps no raw samples)."""
    index_path = os.path.join(html_dir, "index.json")
    if not os.path.isfile(index_path):
        raise SystemExit(f"error: {index_path} not found: not a published asv site")
    index = asv_util.load_json(index_path)
    rev_to_hash = {int(r): h for r, h in index["revision_to_hash"].items()}
    rev_to_date = {int(r): d for r, d in index.get("revision_to_date", {}).items()}
    out = []
    for graph_params in index["graph_param_list"]:
        for name, bench in index["benchmarks"].items():
            path = os.path.join(html_dir, Graph.get_file_path(graph_params, name) + ".json")
            if not os.path.isfile(path):
                continue
            data = asv_util.load_json(path)
            combos = _param_dicts(bench)
            for j, params in enumerate(combos):
                s = Series(str(graph_params.get("machine", "?")), name, params, bench.get("unit", ""))
                for rev, value in sorted(data, key=lambda d: d[0]):
                    v = value[j] if isinstance(value, list) else value
                    s.points.append(Point(rev_to_hash.get(rev, str(rev)), rev_to_date.get(rev, 0), v))
                if any(p.value is not None for p in s.points):
                    out.append(s)
    return sorted(out, key=lambda s: (s.machine, s.benchmark, s.label))
