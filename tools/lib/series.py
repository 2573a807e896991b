"""Per-commit series of one benchmark's results, read from asv results or a published asv site.

A series is one (machine, benchmark, parameter combination): its points are ordered the way asv
orders commits (``git rev-list --all --date-order --reverse``) in the repository given, else in
the git checkout that holds the results directory when it knows every commit there, else by the
commit date stored in each result file (commits made within one second, as a rebase or a script
makes them, share a date: only git can order those). Values are in the benchmark's unit (seconds, bytes).
"""
from __future__ import annotations

import itertools
import os
import re
import statistics
import warnings
from dataclasses import dataclass, field
from typing import Iterator

from asv import _stats
from asv import util as asv_util
from asv.benchmarks import Benchmarks
from asv.graph import Graph
from asv.machine import Machine
from asv.results import Results

from tools.lib.errors import ToolError, ToolWarning


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


def asv_reason(exc: BaseException, path: str) -> str:
    """asv's message about ``path`` without the path itself (the caller names the file)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for name in {os.path.abspath(path), path}:
        text = text.replace(f" '{name}'", "").replace(f"'{name}'", "the file").replace(name, "the file")
    text = re.sub(r"\s*in file '[^']*'", "", text)
    return text.strip(" :") or type(exc).__name__


def _load_json(path: str, what: str, api_version: int | None = None):
    """asv's JSON loader with a ToolError naming the file when it is not what asv wrote."""
    try:
        return asv_util.load_json(path, api_version=api_version)
    except asv_util.UserError as exc:
        raise ToolError(f"{path} is not a readable {what} ({asv_reason(exc, path)})") from None
    except UnicodeDecodeError as exc:
        raise ToolError(f"{path} is not a readable {what} (not UTF-8 text: {exc.reason})") from None


def check_results_dir(results_dir: str) -> None:
    """ToolError unless ``results_dir`` is an existing directory."""
    if not os.path.exists(results_dir):
        raise ToolError(f"results directory {results_dir} does not exist")
    if not os.path.isdir(results_dir):
        raise ToolError(f"results directory {results_dir} is a file, not a directory")


def load_benchmarks(results_dir: str) -> dict[str, dict]:
    """benchmarks.json of a results directory: {benchmark name: asv's definition}."""
    check_results_dir(results_dir)
    path = Benchmarks.get_benchmark_file_path(results_dir)
    if not os.path.isfile(path):
        raise ToolError(f"{path} not found (run `asv run` or tools.migrate first)")
    data = _load_json(path, "asv benchmarks.json", Benchmarks.api_version)
    if not isinstance(data, dict):
        raise ToolError(f"{path} does not hold a JSON object of benchmark definitions")
    return {k: v for k, v in data.items() if k != "version" and isinstance(v, dict)}


def machine_facts(machine_dir: str) -> dict:
    """``<machine_dir>/machine.json`` as a dict; ToolError naming the file if it is missing or unreadable.

    Every result of the machine is filed under it: a machine whose file cannot be read would
    silently drop out of a report or a site, so that is an error, never a skip.
    """
    path = os.path.join(machine_dir, "machine.json")
    if not os.path.isfile(path):
        raise ToolError(f"{path} not found: {machine_dir} is not an asv machine directory")
    data = _load_json(path, "asv machine.json", Machine.api_version)
    if not isinstance(data, dict) or not isinstance(data.get("machine"), str):
        raise ToolError(f"{path} is not a readable asv machine.json (no \"machine\" name in it)")
    return data


# Folders of results/ that the suite's tools write and that hold no asv results (noise floors,
# confirmations of regressions, run logs); asv skips them too, having no machine.json there.
NOT_MACHINE_DIRS = frozenset({"noise", "confirmations", "logs"})


def machine_dirs(results_dir: str) -> list[str]:
    """The machine directories under ``results_dir`` (those holding a machine.json or result files),
    each one's machine.json checked (``machine_facts``): ToolError naming the first unreadable one.
    ``NOT_MACHINE_DIRS`` are not machines."""
    check_results_dir(results_dir)
    found = []
    for entry in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, entry)
        if not os.path.isdir(folder) or entry in NOT_MACHINE_DIRS:
            continue
        files = [f for f in os.listdir(folder) if f.endswith(".json")]
        if files:
            machine_facts(folder)
            found.append(folder)
    return found


def iter_results_checked(results_dir: str, machine: str | None = None) -> Iterator[Results]:
    """Every result file under ``results_dir`` (of ``machine`` only, if given), as asv loads them.

    A machine directory whose machine.json is unreadable is a ToolError (asv would skip the whole
    machine without a word); a result file that cannot be read (truncated, not asv's format) is
    skipped with a ``ToolWarning`` naming it, the others still count.
    """
    for folder in machine_dirs(results_dir):
        if machine is not None and os.path.basename(folder) != machine:
            continue
        files = sorted(f for f in os.listdir(folder) if f.endswith(".json") and f != "machine.json")
        name = machine_facts(folder)["machine"]
        for filename in files:
            path = os.path.join(folder, filename)
            try:
                yield Results.load(path, machine_name=name)
            except (asv_util.UserError, KeyError, TypeError, ValueError, AttributeError) as exc:
                warnings.warn(f"skipped {path}: not a readable asv result file ({asv_reason(exc, path)})",
                              ToolWarning, stacklevel=2)


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

    if not os.path.exists(repo_path):
        raise ToolError(f"repository {repo_path} does not exist")
    if not os.path.isdir(repo_path):
        raise ToolError(f"repository {repo_path} is a file, not a directory")
    try:
        shas = git.Repo(repo_path, search_parent_directories=True).git.rev_list(
            "--all", "--date-order", "--reverse").split()
    except git.InvalidGitRepositoryError:
        raise ToolError(f"{repo_path} is not a git repository") from None
    except git.GitCommandError as exc:
        detail = (exc.stderr or "").strip().splitlines()
        raise ToolError(f"git rev-list failed in {repo_path}" + (f" ({detail[-1]})" if detail else "")) from None
    return {sha: i for i, sha in enumerate(shas)}


def _enclosing_order(results_dir: str, commits: set[str]) -> dict[str, int] | None:
    """asv's commit order in the git checkout holding ``results_dir``, if it knows every one of
    ``commits``; None otherwise (no checkout, or results copied from another repository)."""
    try:
        order = git_commit_order(results_dir)  # searches the folders above for the checkout
    except ToolError:
        return None
    return order if commits <= order.keys() else None


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
        warnings.warn(f"results for {len(unknown)} commit(s) not in the repository were left out "
                      f"(e.g. {sorted(unknown)[0][:8]})", ToolWarning, stacklevel=3)
    return sorted(out, key=lambda s: (s.machine, s.benchmark, s.label))


def _is_number(x) -> bool:
    """None (not measured) or a real number; anything else in a result file is damage."""
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def series_from_results(results_dir: str, repo_path: str | None = None) -> list[Series]:
    """Every (machine, benchmark, params) series found in an asv results directory."""
    benchmarks = load_benchmarks(results_dir)
    series: dict[tuple, Series] = {}
    for result in iter_results_checked(results_dir):
        machine = result.params.get("machine", "?")
        bad: list[str] = []
        for key in result.get_result_keys(benchmarks):
            bench = benchmarks[key]
            try:
                values = result.get_result_value(key, bench["params"])
                samples = result.get_result_samples(key, bench["params"])
                stats = result.get_result_stats(key, bench["params"])
            except (TypeError, ValueError, KeyError, IndexError, AttributeError):
                bad.append(key)
                continue
            for params, value, smp, st in zip(_param_dicts(bench), values, samples, stats):
                smp = list(smp) if isinstance(smp, (list, tuple)) else []
                if not _is_number(value) or not all(_is_number(x) for x in smp):
                    bad.append(key)
                    value, smp, st = None, [], None
                sid = (machine, key, tuple(params.items()))
                s = series.setdefault(sid, Series(machine, key, params, bench.get("unit", "")))
                s.points.append(Point(result.commit_hash, result.date or 0, value, smp,
                                      _stats.get_weight(st) if isinstance(st, dict) else None))
        if bad:
            warnings.warn(f"{result.commit_hash[:8]} on {machine}: values that are not numbers left out "
                          f"({', '.join(sorted(set(bad))[:3])}{', ...' if len(set(bad)) > 3 else ''})",
                          ToolWarning, stacklevel=2)
    if repo_path:
        order = git_commit_order(repo_path)
    else:
        order = _enclosing_order(results_dir, {p.commit for s in series.values() for p in s.points})
    return _order(series, order)


def _graph_series(graph_params: dict, name: str, bench: dict, data, rev_to_hash: dict, rev_to_date: dict) -> list[Series]:
    """One graph file's series (one per parameter combination), values as asv published them."""
    found = []
    for j, params in enumerate(_param_dicts(bench)):
        s = Series(str(graph_params.get("machine", "?")), name, params, bench.get("unit", ""))
        for rev, value in sorted(data, key=lambda d: d[0]):
            v = value[j] if isinstance(value, list) else value
            if not _is_number(v):
                raise ValueError(f"value {v!r} at revision {rev} is not a number")
            s.points.append(Point(rev_to_hash.get(rev, str(rev)), rev_to_date.get(rev, 0), v))
        if any(p.value is not None for p in s.points):
            found.append(s)
    return found


def series_from_site(html_dir: str) -> list[Series]:
    """Series from a published asv site (values only: a site keeps no raw samples)."""
    index_path = os.path.join(html_dir, "index.json")
    if not os.path.isfile(index_path):
        raise ToolError(f"{index_path} not found: not a published asv site")
    index = _load_json(index_path, "asv site index.json")
    try:
        rev_to_hash = {int(r): h for r, h in index["revision_to_hash"].items()}
        rev_to_date = {int(r): d for r, d in index.get("revision_to_date", {}).items()}
        graph_param_list, benchmarks = list(index["graph_param_list"]), dict(index["benchmarks"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ToolError(f"{index_path} is not an asv site index ({type(exc).__name__}: {exc})") from None
    out = []
    for graph_params in graph_param_list:
        for name, bench in benchmarks.items():
            path = os.path.join(html_dir, Graph.get_file_path(graph_params, name) + ".json")
            if not os.path.isfile(path):
                continue
            data = _load_json(path, "asv graph file")
            try:
                out.extend(_graph_series(graph_params, name, bench, data, rev_to_hash, rev_to_date))
            except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
                warnings.warn(f"skipped {path}: not an asv graph file ({type(exc).__name__}: {exc})",
                              ToolWarning, stacklevel=2)
    return sorted(out, key=lambda s: (s.machine, s.benchmark, s.label))


def _bad_number(x) -> bool:
    """A measurement no ratio can be taken of: zero, negative or infinite (None/NaN mean "not run")."""
    return x is not None and x == x and not (0.0 < x < float("inf"))


def cannot_judge(series: Series) -> str | None:
    """Why steps in ``series`` cannot be judged (its values are ratios' denominators), or None if they can.

    A value or sample of 0, a negative one or an infinite one makes every ratio around it
    meaningless (``track_rss_growth`` is 0.0 when nothing grew); missing values (None, NaN: a
    benchmark not run or skipped at that commit) are simply left out, as asv does.
    """
    for point in series.points:
        bad = [x for x in [point.value, *point.samples] if _bad_number(x)]
        if bad:
            return f"value {bad[0]!r} at commit {point.commit[:8]}; steps are ratios and need finite values > 0"
    return None


def split_judgeable(all_series: list[Series]) -> tuple[list[Series], list[tuple[Series, str]]]:
    """(series a detector can judge, [(series, why not)]); a ``ToolWarning`` names each one left out."""
    ok, left_out = [], []
    for s in all_series:
        reason = cannot_judge(s)
        if reason is None:
            ok.append(s)
        else:
            left_out.append((s, reason))
            warnings.warn(f"cannot judge {s.machine} {s.benchmark}({s.label}): {reason}", ToolWarning,
                          stacklevel=2)
    return ok, left_out
