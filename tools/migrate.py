"""Migrate legacy result files into asv result files, each on the commit it was measured at.

Placing in time, first that applies: the time in the file name -> the last commit on ``--branch`` at
or before it; else the commit that added the file to git; else ``--commit``. Each legacy file becomes
``results/<machine>/<sha8>-legacy-<stem>.json`` with benchmarks ``legacy.time_forward`` (seconds) and
``legacy.peakmem_forward`` (bytes), params implementation x seq_len x shape; their entries are merged
into ``results/benchmarks.json``. Originals are only read. Running it twice changes nothing; a file
placed on another commit than before moves there (its old copy goes). A failed legacy entry stays a
failure with its error text (in the result file's stderr and in the printed plan). Every write is
a temporary file renamed over the target.
``asv run`` rewrites benchmarks.json from the discovered suite, so re-run this before ``asv publish``.

Usage: ``python -m tools.migrate LEGACY.json|DIR ... [--repo .] [--branch HEAD] [--dry-run]``
"""
from __future__ import annotations

import argparse
import datetime
import glob
import itertools
import os
import re
import sys
import tempfile
from dataclasses import dataclass

import git
from asv import util as asv_util
from asv.benchmarks import Benchmarks
from asv.machine import Machine
from asv.results import Results, get_filename
from asv.runner import BenchmarkResult

from tools import cli
from tools.lib.errors import ToolError
from tools.lib.files import check_writable, write_bytes_atomic, write_json_atomic
from tools.lib.legacy_format import LegacyEntry, load_legacy, timestamp_from_name
from tools.lib.series import asv_reason

TIME_BENCHMARK = "legacy.time_forward"
MEMORY_BENCHMARK = "legacy.peakmem_forward"
PARAM_NAMES = ["implementation", "seq_len", "shape"]
# Fixed: results written by any run of this tool stay valid for the benchmarks.json entries it writes.
BENCHMARK_VERSION = "attnbench-legacy-1"
UNKNOWN_MACHINE_FIELDS = ("os", "arch", "cpu", "num_cpu", "ram")
# Top-level key of a migrated result file listing the failed legacy entries and their error text.
LEGACY_ERRORS_KEY = "legacy_errors"


@dataclass
class Placement:
    """Where one legacy file lands, or why it cannot."""

    path: str
    commit: git.Commit | None = None
    how: str = ""
    problem: str | None = None
    run_time: datetime.datetime | None = None


def find_inputs(paths: list[str]) -> list[str]:
    """Files named, plus the ``*.json`` directly inside named directories; missing paths are an error."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(sorted(glob.glob(os.path.join(path, "*.json"))))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise ToolError(f"{path} does not exist")
    return found


def commit_at(repo: git.Repo, branch: str, when: datetime.datetime) -> git.Commit | None:
    """The last commit on ``branch`` (first-parent line) committed at or before ``when``."""
    stamp = int(when.timestamp())
    shas = repo.git.rev_list("-1", "--first-parent", f"--before={stamp}", branch).split()
    return repo.commit(shas[0]) if shas else None


def commit_adding(repo: git.Repo, path: str) -> git.Commit | None:
    """The commit that first added ``path`` to the repository, if it is tracked there."""
    abs_path = os.path.realpath(path)
    root = os.path.realpath(repo.working_tree_dir)
    if os.path.commonpath([abs_path, root]) != root:
        return None
    rel = os.path.relpath(abs_path, root)
    shas = repo.git.log("--diff-filter=A", "--format=%H", "--", rel).split()
    return repo.commit(shas[-1]) if shas else None


def place(repo: git.Repo, branch: str, path: str, explicit: git.Commit | None) -> Placement:
    """Choose the commit for one legacy file (file-name time, then git history, then --commit)."""
    when, note = timestamp_from_name(os.path.basename(path))
    reasons = []
    if when is not None:
        commit = commit_at(repo, branch, when)
        if commit is not None:
            return Placement(path, commit, f"{note} {when:%Y-%m-%d %H:%M}", run_time=when)
        reasons.append(f"no commit on {branch} at or before {when:%Y-%m-%d %H:%M} UTC")
    else:
        reasons.append(note)
    commit = commit_adding(repo, path)
    if commit is not None:
        return Placement(path, commit, "commit that added the file", run_time=when)
    reasons.append("not tracked in the repository's history")
    if explicit is not None:
        return Placement(path, explicit, "--commit", run_time=when)
    reasons.append("no --commit given")
    return Placement(path, problem="; ".join(reasons))


def _params_of(entries: list[LegacyEntry]) -> list[list[str]]:
    """asv-style params (lists of repr strings) covering the entries, in a stable order."""
    impls = sorted({e.implementation for e in entries})
    seqs = sorted({e.seq_len for e in entries})
    shapes = sorted({e.shape for e in entries})
    return [[repr(i) for i in impls], [repr(s) for s in seqs], [repr(s) for s in shapes]]


def benchmark_entries(params: list[list[str]]) -> dict[str, dict]:
    """benchmarks.json entries for the two legacy benchmarks over ``params``."""
    common = {
        "param_names": PARAM_NAMES, "params": params, "version": BENCHMARK_VERSION,
        "timeout": 60.0, "rounds": 1, "repeat": 0, "number": 0, "min_run_count": 1,
        "sample_time": 0.01, "warmup_time": -1,
    }
    return {
        TIME_BENCHMARK: {
            **common, "name": TIME_BENCHMARK, "type": "time", "unit": "seconds",
            "code": "Forward time of one call, migrated from a legacy result file (its samples, in s).",
        },
        MEMORY_BENCHMARK: {
            **common, "name": MEMORY_BENCHMARK, "type": "peakmemory", "unit": "bytes",
            "code": "Peak memory of the forward call, migrated from a legacy result file.",
        },
    }


def _by_key(entries: list[LegacyEntry]) -> tuple[dict, list[str]]:
    table, notes = {}, []
    for e in entries:
        key = (repr(e.implementation), repr(e.seq_len), repr(e.shape))
        if key in table:
            notes.append(f"duplicate entry {e.implementation} seq_len={e.seq_len} [{e.shape}] ignored")
            continue
        table[key] = e
    return table, notes


def failures(entries: list[LegacyEntry]) -> list[dict]:
    """The failed entries, each ``{implementation, seq_len, shape, error}`` (the error text kept)."""
    return [{"implementation": e.implementation, "seq_len": e.seq_len, "shape": e.shape, "error": e.error}
            for e in entries if e.error is not None]


def failure_text(entries: list[LegacyEntry]) -> str:
    """One line per failed entry, ``implementation seq_len=N [shape]: error text``."""
    return "".join(f"{f['implementation']} seq_len={f['seq_len']} [{f['shape']}]: {f['error']}\n"
                   for f in failures(entries))


def _time_result(entry: LegacyEntry | None) -> tuple[float | None, list[float] | None, int | None]:
    if entry is None or entry.error is not None:
        return None, None, None
    if entry.samples_ms:
        seconds = [s / 1000.0 for s in entry.samples_ms]
        return seconds[0], seconds, 1  # number=1: asv recomputes the median and CI from the samples
    if entry.mean_time_ms is not None:
        return entry.mean_time_ms / 1000.0, None, None
    return None, None, None


def build_results(entries: list[LegacyEntry], commit: git.Commit, machine_params: dict, env_name: str,
                  started_at: datetime.datetime) -> tuple[Results, list[str]]:
    """An asv Results object holding one legacy file's entries on ``commit``."""
    params = _params_of(entries)
    table, notes = _by_key(entries)
    benchmarks = benchmark_entries(params)
    run_params = {**machine_params, "python": "legacy"}
    results = Results(run_params, {}, commit.hexsha, commit.authored_date * 1000, "legacy", env_name, {})
    keys = list(itertools.product(*params))
    times = [_time_result(table.get(k)) for k in keys]
    results.add_result(
        benchmarks[TIME_BENCHMARK],
        BenchmarkResult(result=[t[0] for t in times], samples=[t[1] for t in times],
                        number=[t[2] for t in times], errcode=0, stderr=failure_text(entries), profile=None),
        started_at=started_at, record_samples=True,
    )
    memory = [None if (e := table.get(k)) is None or e.error or e.peak_memory_mb is None
              else e.peak_memory_mb * 2**20 for k in keys]
    results.add_result(
        benchmarks[MEMORY_BENCHMARK],
        BenchmarkResult(result=memory, samples=[None] * len(keys), number=[None] * len(keys),
                        errcode=0, stderr="", profile=None),
        started_at=started_at,
    )
    return results, notes


def env_name_for(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return "legacy-" + re.sub(r"[^A-Za-z0-9_.]+", "_", stem)


def result_path(results: Results) -> str:
    """Where asv saves ``results``, relative to the results directory: ``<machine>/<sha8>-<env>.json``."""
    return get_filename(results.params["machine"], results.commit_hash, results.env_name)


def _write_if_new(results: Results, results_dir: str, force: bool, failures: list[dict] | None = None) -> str:
    """Save unless an identical file is there; a different one is kept unless ``force``."""
    target = os.path.join(results_dir, result_path(results))
    with tempfile.TemporaryDirectory() as tmp:
        results.save(tmp)
        saved = os.path.join(tmp, result_path(results))
        if failures:
            # asv keeps no error text in a result file (stderr is not saved): this key holds it;
            # asv reads past keys it does not know.
            data = asv_util.load_json(saved)
            data[LEGACY_ERRORS_KEY] = failures
            asv_util.write_json(saved, data)
        with open(saved, "rb") as fh:
            fresh = fh.read()
    if os.path.exists(target):
        with open(target, "rb") as fh:
            if fh.read() == fresh:
                return "unchanged"
        if not force:
            return "kept: a different file is already there (use --force to replace it)"
    os.makedirs(os.path.dirname(target), exist_ok=True)
    write_bytes_atomic(target, fresh)
    return "written"


def earlier_placements(results_dir: str, machine: str, env_name: str, keep: str) -> list[str]:
    """This tool's result files for the same legacy file (``env_name``) on other commits than ``keep``.

    Only files that asv can read as a legacy migration of that very file count: the run's
    ``python`` is "legacy" and its environment name matches.
    """
    folder = os.path.join(results_dir, machine)
    found = []
    suffix = os.path.basename(keep).split("-", 1)[1]  # asv hashes a long environment name
    for path in sorted(glob.glob(os.path.join(folder, "*-" + glob.escape(suffix)))):
        if os.path.abspath(path) == os.path.abspath(keep):
            continue
        try:
            old = Results.load(path)
        except Exception:  # not ours to judge or remove
            continue
        if old.env_name == env_name and old.params.get("python") == "legacy":
            found.append(path)
    return found


def merge_benchmarks_json(results_dir: str, params_list: list[list[list[str]]], dry_run: bool) -> str:
    """Add the legacy benchmarks to benchmarks.json (union of params); other entries are untouched."""
    path = Benchmarks.get_benchmark_file_path(results_dir)
    current = {}
    if os.path.exists(path):
        current = _read_json(path, "asv benchmarks.json", Benchmarks.api_version)
    union = [set() for _ in PARAM_NAMES]
    for name in (TIME_BENCHMARK, MEMORY_BENCHMARK):
        for i, values in enumerate(current.get(name, {}).get("params", [])[: len(PARAM_NAMES)]):
            union[i].update(values)
    for params in params_list:
        for i, values in enumerate(params):
            union[i].update(values)
    merged_params = [sorted(union[0]), sorted(union[1], key=int), sorted(union[2])]
    wanted = {**{k: v for k, v in current.items() if k != "version"}, **benchmark_entries(merged_params)}
    before = {k: v for k, v in current.items() if k != "version"}
    if wanted == before:
        return "unchanged"
    if not dry_run:
        write_json_atomic(path, wanted, Benchmarks.api_version)
    return "would update" if dry_run else "updated"


def _read_json(path: str, what: str, api_version: int | None = None) -> dict:
    """A JSON object from ``path`` as asv reads it; ToolError naming the file if it is anything else."""
    try:
        data = asv_util.load_json(path, api_version=api_version)
    except asv_util.UserError as exc:
        raise ToolError(f"{path} is not a readable {what} ({asv_reason(exc, path)}); not touching it") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise ToolError(f"{path} is not a readable {what} ({exc}); not touching it") from None
    if not isinstance(data, dict):
        raise ToolError(f"{path} is not a readable {what} (not a JSON object); not touching it")
    return data


def ensure_machine_json(results_dir: str, machine: str, machine_file: str | None, dry_run: bool) -> dict:
    """Machine params for the results; writes results/<machine>/machine.json only if it is missing."""
    path = os.path.join(results_dir, machine, "machine.json")
    if os.path.exists(path):
        info = _read_json(path, "asv machine.json", Machine.api_version)
    else:
        info = {"machine": machine, **{k: "unknown" for k in UNKNOWN_MACHINE_FIELDS}}
        if machine_file and os.path.exists(machine_file):
            known = _read_json(machine_file, "asv machine file").get(machine)
            if isinstance(known, dict):
                info.update({k: str(v) for k, v in known.items() if isinstance(k, str)})
        info["machine"] = machine
        if not dry_run:
            check_writable(path, make_parents=True)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_json_atomic(path, info, Machine.api_version)
    # Sorted: the params dict is saved in insertion order, and reruns must write identical bytes.
    return {k: info[k] for k in sorted(info) if k != "version"}


def open_repo(path: str) -> git.Repo:
    """The git repository at (or above) ``path``; ToolError if there is none."""
    if not os.path.exists(path):
        raise ToolError(f"repository {path} does not exist")
    if not os.path.isdir(path):
        raise ToolError(f"repository {path} is a file, not a directory")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except git.InvalidGitRepositoryError:
        raise ToolError(f"{path} is not inside a git repository") from None
    try:
        repo.head.commit
    except ValueError:
        raise ToolError(f"repository {path} has no commits: nothing to place results on") from None
    return repo


def migrate(args: argparse.Namespace) -> int:
    repo = open_repo(args.repo)
    try:
        repo.git.rev_parse("--verify", args.branch + "^{commit}")
        explicit = repo.commit(args.commit) if args.commit else None
    except (git.GitCommandError, ValueError, git.BadName) as exc:
        detail = str(exc).strip().splitlines()[-1].strip().removeprefix("stderr:").strip(" '")
        raise ToolError(f"unknown revision ({detail})") from None
    if os.path.exists(args.results_dir) and not os.path.isdir(args.results_dir):
        raise ToolError(f"--results-dir {args.results_dir} is a file, not a directory")

    inputs = find_inputs(args.paths)
    if not inputs:
        raise ToolError("no legacy .json files found in the given paths")
    # Every file this run reads or merges into is checked before anything is written.
    benchmarks_json = Benchmarks.get_benchmark_file_path(args.results_dir)
    if os.path.exists(benchmarks_json):
        _read_json(benchmarks_json, "asv benchmarks.json", Benchmarks.api_version)
    machine_file = os.path.expanduser(args.machine_file)
    machine_params = ensure_machine_json(args.results_dir, args.machine, machine_file, dry_run=True)
    machine_written = args.dry_run
    prefix = "[dry run] " if args.dry_run else ""
    all_params, failed = [], 0
    for path in inputs:
        try:
            entries = load_legacy(path)
        except (ValueError, OSError) as exc:
            print(f"{prefix}SKIPPED {path}: corrupt legacy file: {exc}")
            failed += 1
            continue
        placement = place(repo, args.branch, path, explicit)
        if placement.problem:
            print(f"{prefix}NOT PLACED {path}: {placement.problem}")
            failed += 1
            continue
        commit = placement.commit
        started = placement.run_time or datetime.datetime.fromtimestamp(commit.committed_date, datetime.timezone.utc)
        results, notes = build_results(entries, commit, machine_params, env_name_for(path), started)
        n_failed = sum(e.error is not None for e in entries)
        target = os.path.join(args.results_dir, result_path(results))
        if not machine_written:  # written with the first result, not when every file is refused
            ensure_machine_json(args.results_dir, args.machine, machine_file, dry_run=False)
            machine_written = True
        status = "planned" if args.dry_run else _write_if_new(results, args.results_dir, args.force,
                                                                      failures(entries))
        if not status.startswith("kept"):
            all_params.append(_params_of(entries))
        else:
            failed += 1
        subject = commit.summary[:60]
        print(f"{prefix}PLACED {path} on {commit.hexsha[:7]} ({subject}) by {placement.how}: "
              f"{len(entries)} entries, {n_failed} failed -> {target} [{status}]")
        if not status.startswith("kept"):
            # The file now lives on this commit: a copy on another commit would make one run two points.
            for old in earlier_placements(args.results_dir, args.machine, results.env_name, target):
                if not args.dry_run:
                    os.unlink(old)
                print(f"    {'would move' if args.dry_run else 'moved'} from {old}")
        for line in failure_text(entries).splitlines():
            print(f"    failed: {line}")
        for note in notes:
            print(f"    note: {note}")
    if all_params:
        print(f"{prefix}benchmarks.json: {merge_benchmarks_json(args.results_dir, all_params, args.dry_run)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="legacy result files, or directories holding them")
    parser.add_argument("--repo", default=".", help="git repository the results belong to (default: .)")
    parser.add_argument("--branch", default="HEAD", help="branch whose history times map onto (default: HEAD)")
    parser.add_argument("--commit", help="commit for files that cannot be placed otherwise")
    parser.add_argument("--results-dir", default="results", help="asv results directory (default: results)")
    parser.add_argument("--machine", type=cli.machine_name, default="legacy", help="machine name to file results under (default: legacy)")
    parser.add_argument("--machine-file", default="~/.asv-machine.json",
                        help="asv machine file to take the machine's facts from, if it names it")
    parser.add_argument("--dry-run", action="store_true", help="show the plan, write nothing")
    parser.add_argument("--force", action="store_true", help="replace migrated files whose content differs")
    return migrate(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli.run(main))
