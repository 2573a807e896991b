"""Bad input to every command-line tool: one ``error:`` line (or argparse's usage error), the right
exit status, no traceback, and nothing on disk removed or changed.

Each case runs a command's ``main`` in-process through the error edge (``tools.cli.run``) on a
temporary copy of real results (one machine, a few commits); a handful run as programs
(``python -m tools.x``) to show that no traceback escapes the process either. Corrupt inputs are
made by the cases themselves: truncated and garbage JSON, garbage machine files, empty and
missing repositories, zero, NaN, negative and infinite values.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from git_helpers import git

from tools import badges, bisect, cli, machine, migrate, noise, publish, report, simulate, summary

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "results"
MACHINE = "cpu-amd-epyc-2c"
N_RESULT_FILES = 5  # enough commits for a history, few enough to keep each case cheap
ZERO_BENCH = "bench_memory.CpuPeakMemory.track_rss_growth"  # 0.0 when nothing grew


# --- the workspace: a copy of real results, a git repo, legacy files ----------------------------

def _tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` (directories by their files)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir() and not any(path.iterdir()):
            out[str(path.relative_to(root)) + "/"] = "empty dir"
    return out


def _legacy_entry(**changes):
    entry = {"implementation": "DilatedAttention", "seq_len": 4096, "batch_size": 1, "num_heads": 8,
             "head_dim": 64, "mean_time_ms": 31.0, "peak_memory_mb": 210.5, "samples": [30.1, 31.9, 31.6],
             "error": None}
    entry.update(changes)
    return entry


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Built once: results (benchmarks.json + one machine's first files), a git repo with two
    commits, a legacy file, an empty git repo and a plain directory."""
    base = tmp_path_factory.mktemp("template")
    results = base / "results"
    (results / MACHINE).mkdir(parents=True)
    shutil.copy(REAL / "benchmarks.json", results / "benchmarks.json")
    shutil.copy(REAL / MACHINE / "machine.json", results / MACHINE / "machine.json")
    for path in sorted(p for p in (REAL / MACHINE).glob("*.json") if p.name != "machine.json")[:N_RESULT_FILES]:
        shutil.copy(path, results / MACHINE / path.name)
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(2):
        (repo / "f.txt").write_text(str(i))
        git(repo, "add", "f.txt")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"c{i}",
            when=f"2025-06-2{i + 1}T12:00:00+00:00")
    (base / "legacy").mkdir()
    (base / "legacy" / "good.json").write_text(json.dumps([_legacy_entry()]))
    (base / "empty_repo").mkdir()
    git(base / "empty_repo", "init", "-q")
    (base / "plain_dir").mkdir()
    (base / "a_file").write_text("not a directory\n")
    (base / "html").mkdir()
    (base / "html" / "index.html").write_text("<html>the published site</html>\n")
    return base


@pytest.fixture()
def ws(template, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the template, the current directory for the case."""
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(root))  # ~/.asv-machine.json is the workspace's
    return root


# --- corruptions --------------------------------------------------------------------------------

def _result_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "results" / MACHINE).glob("*.json") if p.name != "machine.json")


def truncate(path: str, keep: int = 200) -> Callable[[Path], None]:
    def corrupt(root: Path) -> None:
        target = root / path
        target.write_bytes(target.read_bytes()[:keep])
    return corrupt


def write(path: str, text: str) -> Callable[[Path], None]:
    def corrupt(root: Path) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return corrupt


def truncate_result(index: int = 1) -> Callable[[Path], None]:
    def corrupt(root: Path) -> None:
        target = _result_files(root)[index]
        target.write_bytes(target.read_bytes()[:300])
    return corrupt


def set_value(value: float, bench: str = ZERO_BENCH, index: int = 2) -> Callable[[Path], None]:
    """One value of ``bench`` in the ``index``-th result file becomes ``value`` (0.0, -1, inf...)."""
    def corrupt(root: Path) -> None:
        target = _result_files(root)[index]
        data = json.loads(target.read_text())
        data["results"][bench][0][0] = value
        target.write_text(json.dumps(data, allow_nan=True))
    return corrupt


def legacy(name: str, data) -> Callable[[Path], None]:
    def corrupt(root: Path) -> None:
        text = data if isinstance(data, str) else json.dumps(data, allow_nan=True)
        (root / "legacy" / name).write_text(text)
    return corrupt


# --- running a case -----------------------------------------------------------------------------

COMMANDS = {"report": report, "badges": badges, "bisect": bisect, "machine": machine, "migrate": migrate,
            "noise": noise, "publish": publish, "simulate": simulate, "summary": summary}


@dataclass
class Case:
    tool: str
    argv: list[str]
    code: int  # expected exit status
    message: str  # text the last error line (or, for exit 0, the warning) must contain
    corrupt: list[Callable[[Path], None]] = field(default_factory=list)
    id: str = ""


def invoke(tool: str, argv: list[str], capsys) -> tuple[int, str, str]:
    """``python -m tools.<tool> argv`` in-process: (exit status, stdout, stderr)."""
    try:
        code = cli.run(COMMANDS[tool].main, argv)
    except SystemExit as exc:  # argparse: usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clean_error(code: int, err: str, expected_code: int, message: str) -> None:
    assert code == expected_code, f"exit {code}, expected {expected_code}; stderr:\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    if expected_code == 2:  # argparse: usage lines, then "<prog>: error: argument ...: <why>"
        assert lines and ": error: " in lines[-1] and message in lines[-1], err
    else:
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0] == lines[-1] and message in errors[0], err


def run_case(case: Case, ws: Path, capsys) -> tuple[int, str, str]:
    for corrupt in case.corrupt:
        corrupt(ws)
    before = _tree_digest(ws)
    files = _result_files(ws)
    argv = [a.replace("{ws}", str(ws)).replace("{r0}", str(files[0])).replace("{r1}", str(files[1]))
            for a in case.argv]
    code, out, err = invoke(case.tool, argv, capsys)
    assert _tree_digest(ws) == before, f"{case.tool} {argv} changed files on disk"
    return code, out, err


# --- the table of failing inputs ------------------------------------------------------------------

R = ["--results", "results"]
FAILING = [
    # report: option values
    Case("report", [*R, "--threshold", "nan"], 2, "not a finite number"),
    Case("report", [*R, "--threshold", "inf"], 2, "not a finite number"),
    Case("report", [*R, "--threshold=-inf"], 2, "not a finite number"),
    Case("report", [*R, "--threshold", "0.9"], 2, "ratio above 1"),
    Case("report", [*R, "--threshold", "1"], 2, "ratio above 1"),
    Case("report", [*R, "--threshold", "fast"], 2, "not a number"),
    Case("report", [*R, "--alpha", "5"], 2, "probability between 0 and 1"),
    Case("report", [*R, "--alpha", "0"], 2, "probability between 0 and 1"),
    Case("report", [*R, "--alpha", "1"], 2, "probability between 0 and 1"),
    Case("report", [*R, "--alpha", "nan"], 2, "not a finite number"),
    Case("report", [*R, "--alpha=-0.01"], 2, "probability between 0 and 1"),
    Case("report", [*R, "--format", "xml"], 2, "invalid choice"),
    Case("report", [*R, "--detector", "magic"], 2, "invalid choice"),
    Case("report", ["--results", "elsewhere", "--html", "html"], 2, "not allowed with"),
    # report: paths
    Case("report", [*R, "--repo", "{ws}/no/such/repo"], 1, "does not exist"),
    Case("report", [*R, "--repo", "plain_dir"], 1, "not a git repository"),
    Case("report", [*R, "--repo", "a_file"], 1, "is a file, not a directory"),
    Case("report", [*R, "--output", "a_file/report.md"], 1, "is a file, not a directory"),
    Case("report", [*R, "--output", "plain_dir"], 1, "is a directory"),
    Case("report", [*R, "--output", "no_dir/report.md"], 1, "does not exist"),
    Case("report", ["--results", "no_results"], 1, "does not exist"),
    Case("report", ["--results", "plain_dir"], 1, "benchmarks.json not found"),
    Case("report", ["--results", "a_file"], 1, "is a file, not a directory"),
    Case("report", ["--html", "plain_dir"], 1, "not a published asv site"),
    Case("report", ["--html", "html"], 1, "not a readable asv site index", [write("html/index.json", '{"rev')]),
    Case("report", ["--html", "html"], 1, "not an asv site index", [write("html/index.json", "{}")]),
    Case("report", ["--html", "html"], 1, "not an asv site index", [write("html/index.json", "[1, 2]")]),
    Case("report", [*R, "--benchmark", "no_such_benchmark"], 1, "no benchmark name contains"),
    # report: corrupt results
    Case("report", R, 1, "benchmarks.json", [truncate("results/benchmarks.json")]),
    Case("report", R, 1, "benchmarks.json", [write("results/benchmarks.json", "[]")]),
    Case("report", R, 1, "machine.json", [write(f"results/{MACHINE}/machine.json", "{garbage")]),
    Case("report", R, 1, "machine.json", [write(f"results/{MACHINE}/machine.json", "[]")]),
    Case("report", R, 1, "machine.json", [write(f"results/{MACHINE}/machine.json", '{"version": 1}')]),
    Case("report", R, 1, "machine.json", [write(f"results/{MACHINE}/machine.json", "")]),
    # badges
    Case("badges", [*R, "--threshold", "nan"], 2, "not a finite number"),
    Case("badges", [*R, "--threshold", "0.5"], 2, "ratio above 1"),
    Case("badges", [*R, "--detector", "x"], 2, "invalid choice"),
    Case("badges", [*R, "--benchmark", "bench_time.TimeForward.time_forward", "--params", "seq_len"], 1,
         "--params must look like name=value"),
    Case("badges", [*R, "--benchmark", "no.such.bench"], 1, "no results for no.such.bench"),
    Case("badges", [*R, "--benchmark", "bench_time.TimeForward.time_forward"], 1, "series match"),
    Case("badges", [*R, "--report", "missing.json"], 1, "not found"),
    Case("badges", [*R, "--report", "bad.json"], 1, "not valid JSON", [write("bad.json", '{"regressions": [')]),
    Case("badges", [*R, "--report", "bad.json"], 1, "not tools.report JSON", [write("bad.json", "[]")]),
    Case("badges", [*R, "--report", "bad.json"], 1, "not tools.report JSON",
         [write("bad.json", '{"regressions": [1, 2]}')]),
    Case("badges", [*R, "--html", "a_file"], 1, "is a file, not a directory"),
    Case("badges", ["--results", "no_results"], 1, "does not exist"),
    Case("badges", R, 1, "machine.json", [write(f"results/{MACHINE}/machine.json", "nonsense")]),
    # summary
    Case("summary", [*R, "--machine", "nope"], 1, "no results for machine 'nope'"),
    Case("summary", [*R, "--machine", "../results"], 2, "not a machine name"),
    Case("summary", [*R, "--machine", ""], 2, "not a machine name"),
    Case("summary", [*R, "--machine", MACHINE, "--commit", ""], 2, "must not be empty"),
    Case("summary", [*R, "--machine", MACHINE, "--commit", "ffffffff"], 1, "no results for commit"),
    Case("summary", [*R, "--machine", MACHINE, "--output", "a_file/x.md"], 1, "is a file, not a directory"),
    Case("summary", ["--results", "no_results", "--machine", MACHINE], 1, "does not exist"),
    Case("summary", [*R, "--machine", MACHINE], 1, "machine.json",
         [write(f"results/{MACHINE}/machine.json", '{"machine": ')]),
    Case("summary", [*R, "--machine", MACHINE], 1, "no readable result files",
         [truncate_result(i) for i in range(N_RESULT_FILES)]),
    # machine
    Case("machine", ["--path", "m.json", "--cpu-only"], 1, "not a readable asv machine file",
         [write("m.json", "{not json")]),
    Case("machine", ["--path", "m.json", "--cpu-only"], 1, "does not hold a JSON object", [write("m.json", "[1]")]),
    Case("machine", ["--path", "m.json", "--cpu-only"], 1, "not a readable asv machine file",
         [write("m.json", "")]),
    Case("machine", ["--path", "plain_dir", "--cpu-only"], 1, "is a directory"),
    Case("machine", ["--path", "a_file/m.json", "--cpu-only"], 1, "is a file, not a directory"),
    Case("machine", ["--path", "no_dir/m.json", "--cpu-only"], 1, "does not exist"),
    Case("machine", ["--name", "../escape", "--cpu-only"], 2, "not a machine name"),
    Case("machine", ["--name", "a b", "--cpu-only"], 2, "not a machine name"),
    # migrate: arguments and repositories
    Case("migrate", ["nope.json", "--repo", "repo"], 1, "nope.json does not exist"),
    Case("migrate", ["legacy", "--repo", "{ws}/no/repo"], 1, "does not exist"),
    Case("migrate", ["legacy", "--repo", "plain_dir"], 1, "not inside a git repository"),
    Case("migrate", ["legacy", "--repo", "a_file"], 1, "is a file, not a directory"),
    Case("migrate", ["legacy", "--repo", "repo", "--commit", "HEAD", "--branch", ""], 1, "unknown revision"),
    Case("migrate", ["legacy", "--repo", "empty_repo"], 1, "has no commits"),
    Case("migrate", ["legacy", "--repo", "repo", "--commit", "deadbeef"], 1, "unknown revision"),
    Case("migrate", ["legacy", "--repo", "repo", "--branch", "no-such-branch"], 1, "unknown revision"),
    Case("migrate", ["legacy", "--repo", "repo", "--machine", "../escape"], 2, "not a machine name"),
    Case("migrate", ["legacy", "--repo", "repo", "--results-dir", "a_file"], 1, "is a file, not a directory"),
    Case("migrate", ["plain_dir", "--repo", "repo"], 1, "no legacy .json files"),
    # migrate: garbage machine files and results it would merge into
    Case("migrate", ["legacy", "--repo", "repo", "--commit", "HEAD"], 1, "not a readable asv machine file",
         [write(".asv-machine.json", "garbage")]),
    Case("migrate", ["legacy", "--repo", "repo", "--commit", "HEAD"], 1, "not a readable asv machine file",
         [write(".asv-machine.json", "[]")]),
    Case("migrate", ["legacy", "--repo", "repo", "--commit", "HEAD"], 1, "not a readable asv machine.json",
         [write("results/legacy/machine.json", "{")]),
    Case("migrate", ["legacy", "--repo", "repo", "--commit", "HEAD"], 1, "not a readable asv benchmarks.json",
         [truncate("results/benchmarks.json")]),
    # bisect (everything here fails before asv runs)
    Case("bisect", ["HEAD", "bench"], 1, "is not FROM..TO"),
    Case("bisect", ["HEAD~3...HEAD", "bench"], 1, "is not FROM..TO"),
    Case("bisect", ["..HEAD", "bench"], 1, "is not FROM..TO"),
    Case("bisect", ["HEAD~3..", "bench"], 1, "is not FROM..TO"),
    Case("bisect", ["^HEAD~2..HEAD", "bench"], 1, "is not FROM..TO"),
    Case("bisect", ["HEAD~2..HEAD..HEAD", "bench"], 1, "is not FROM..TO"),
    Case("bisect", ["HEAD~2..HEAD", "bench("], 2, "not a valid regular expression"),
    Case("bisect", ["HEAD~2..HEAD", "*bench"], 2, "not a valid regular expression"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--alpha", "5"], 2, "probability between 0 and 1"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--alpha", "nan"], 2, "not a finite number"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--min-ratio", "0.5"], 2, "ratio of at least 1"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--min-ratio", "inf"], 2, "not a finite number"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--repeat", "0"], 2, "positive integer"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--rounds=-3"], 2, "positive integer"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--rounds", "2"], 2, "needs 3 or more rounds"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--config", "none.json"], 1, "asv config none.json not found"),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--config", "bad.json"], 1, "asv config bad.json is not readable",
         [write("bad.json", "{")]),
    Case("bisect", ["HEAD~2..HEAD", "bench", "--config", "bad.json"], 1, "asv config bad.json is not readable",
         [write("bad.json", "[]")]),
    Case("bisect", ["nosuchcommit..HEAD", "bench", "--config", str(ROOT / "asv.conf.json")], 1,
         "does not exist in"),
    Case("bisect", ["HEAD~1..HEAD", "bench", "--config", "conf.json"], 1, "holds 1 commit(s)",
         [write("conf.json", json.dumps({"version": 1, "project": "x", "repo": "repo", "results_dir": "r"}))]),
    Case("bisect", ["HEAD~1..HEAD", "bench", "--config", "conf.json"], 1, "does not exist",
         [write("conf.json", json.dumps({"version": 1, "project": "x", "repo": "gone", "results_dir": "r"}))]),
    # simulate
    Case("simulate", ["--trials", "0"], 2, "positive integer"),
    Case("simulate", ["--trials", "many"], 2, "not an integer"),
    Case("simulate", ["--plants=-1"], 2, "positive integer"),
    Case("simulate", ["--speed", "--speed-commits", "1"], 2, "at least 2"),
    Case("simulate", ["--speed-benchmarks", "0"], 2, "positive integer"),
    # noise (the steps that read kept result files; measuring needs asv runs)
    Case("noise", ["compare", "nope.json", "nope2.json"], 1, "not an asv result file"),
    Case("noise", ["compare", "g.json", "g.json"], 1, "not an asv result file", [write("g.json", "{")]),
    Case("noise", ["compare", "{r0}", "{r0}", "--bench", "("], 2, "not a valid regular expression"),
    Case("noise", ["compare", "{r0}", "{r0}", "--params", "["], 1, "not a regular expression"),
    Case("noise", ["compare", "{r0}", "{r0}", "--output", "a_file/t.md"], 1, "is a file, not a directory"),
    Case("noise", ["compare", "{r0}", "{r1}"], 1, "not the same commit"),
    Case("noise", ["summary", "g.json"], 1, "not a readable noise file", [write("g.json", "[")]),
    Case("noise", ["summary", "g.json"], 1, "not a noise file", [write("g.json", "[]")]),
    Case("noise", ["summary", "nope.json"], 1, "not a readable noise file"),
    Case("noise", ["floor", "{r0}", "--output", "a_file/n.json"], 1, "is a file, not a directory"),
    Case("noise", ["floor", "{r0}", "{r1}", "--output", "n.json"], 1, "one commit on one machine"),
    Case("noise", ["floor", "{r0}", "--output", "a_file"], 1, "exists; pass --replace"),
    Case("noise", ["measure", "--runs", "0"], 2, "positive integer"),
    Case("noise", ["measure", "--bench", "*x"], 2, "not a valid regular expression"),
    Case("noise", [], 2, "required"),
    # publish: fails before the site is touched
    Case("publish", ["--results", "results", "--html", "html"], 1, "machine.json",
         [write(f"results/{MACHINE}/machine.json", "{oops")]),
    Case("publish", ["--results", "plain_dir", "--html", "html"], 1, "benchmarks.json not found"),
    Case("publish", ["--results", "no_results", "--html", "html"], 1, "does not exist"),
    Case("publish", ["--results", "results", "--html", "html"], 1, "not valid JSON",
         [write("results/benchmarks-other.saved", '{"x": ')]),
    Case("publish", ["--results", "results", "--html", "html"], 1, "benchmarks-other.saved",
         [write("results/benchmarks-other.saved", "[1, 2]")]),
    Case("publish", ["--results", "results", "--html", "html"], 1, "benchmarks.json",
         [truncate("results/benchmarks.json")]),
]
for _case in FAILING:
    _case.id = f"{_case.tool}: {' '.join(_case.argv)}" + (f" [{len(_case.corrupt)} corrupt]" if _case.corrupt else "")


@pytest.mark.parametrize("case", FAILING, ids=[c.id for c in FAILING])
def test_bad_input_is_one_clean_error_and_changes_nothing(case, ws, capsys):
    code, _, err = run_case(case, ws, capsys)
    assert_one_clean_error(code, err, case.code, case.message)


# --- corrupt legacy files: refused with the file and entry named, nothing written ----------------

BAD_LEGACY = [
    ("truncated.json", '[{"implementation": "A", "seq_len": 40', "invalid JSON"),
    ("nan.json", [_legacy_entry(samples=[30.0, math.nan])], "sample 1 is nan"),
    ("inf.json", [_legacy_entry(mean_time_ms=math.inf)], "mean_time_ms is inf"),
    ("negative.json", [_legacy_entry(samples=[-3.0])], "sample 0 is -3.0"),
    ("zero_time.json", [_legacy_entry(samples=[0.0])], "sample 0 is 0.0"),
    ("negative_memory.json", [_legacy_entry(peak_memory_mb=-1)], "peak_memory_mb is -1.0"),
    ("nan_memory.json", [_legacy_entry(peak_memory_mb=math.nan)], "peak_memory_mb is nan"),
    ("string_sample.json", [_legacy_entry(samples=["fast"])], "sample 0 is 'fast'"),
    ("bool_time.json", [_legacy_entry(mean_time_ms=True)], "mean_time_ms is True"),
    ("numeric_error.json", [_legacy_entry(error=5)], "has error 5"),
    ("no_seq_len.json", [_legacy_entry(seq_len=None)], "seq_len None"),
    ("negative_seq_len.json", [_legacy_entry(seq_len=-4096)], "seq_len -4096"),
    ("no_impl.json", [{k: v for k, v in _legacy_entry().items() if k != "implementation"}], "no implementation"),
    ("samples_dict.json", [_legacy_entry(samples={"a": 1})], "samples that are not a list"),
    ("empty_list.json", [], "holds no entries"),
    ("empty_object.json", {}, "neither a non-empty object"),
    ("scalar.json", 42, "neither a non-empty object"),
    ("rows_not_list.json", {"A": {"seq_len": 1}}, "not a list of entries"),
    ("entry_not_object.json", {"A": [1]}, "not an object"),
    ("binary.json", "\udcff", "not UTF-8"),
]


@pytest.mark.parametrize("name, data, message", BAD_LEGACY, ids=[b[0] for b in BAD_LEGACY])
def test_a_corrupt_legacy_file_is_refused_by_name_and_nothing_is_written(name, data, message, ws, capsys):
    if name == "binary.json":
        (ws / "legacy" / name).write_bytes(b"\xff\xfe[1")
    else:
        legacy(name, data)(ws)
    before = _tree_digest(ws)
    code, out, err = invoke("migrate", [f"legacy/{name}", "--repo", "repo", "--commit", "HEAD"], capsys)
    assert code == 1 and "Traceback" not in out + err
    (line,) = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert f"legacy/{name}" in line and message in line, line
    assert _tree_digest(ws) == before


def test_error_false_is_a_success_and_error_text_is_kept(ws, capsys):
    legacy("mixed.json", {"A": [_legacy_entry(implementation="A", error=False)],
                          "B": [_legacy_entry(implementation="B", error="CUDA out of memory", samples=[],
                                              mean_time_ms=None, peak_memory_mb=None)],
                          "C": [_legacy_entry(implementation="C", error=True, samples=[])]})(ws)
    code, out, _ = invoke("migrate", ["legacy/mixed.json", "--repo", "repo", "--commit", "HEAD"], capsys)
    assert code == 0, out
    assert "3 entries, 2 failed" in out
    assert "failed: B seq_len=4096 [b1 h8 d64]: CUDA out of memory" in out
    (written,) = (ws / "results" / "legacy").glob("*-legacy-mixed.json")
    data = json.loads(written.read_text())
    assert {e["implementation"]: e["error"] for e in data["legacy_errors"]} == {
        "B": "CUDA out of memory", "C": "failed (the legacy file gives no error text)"}
    from asv.results import Results
    loaded = Results.load(str(written))
    params = loaded.get_result_params("legacy.time_forward")
    values = dict(zip([p[0] for p in __import__("itertools").product(*params)],
                      loaded.get_result_value("legacy.time_forward", params)))
    # asv keeps the median of the samples (30.1, 31.9, 31.6 ms); failures have no value.
    assert values["'A'"] == pytest.approx(0.0316) and values["'B'"] is None and values["'C'"] is None


def test_replacing_a_legacy_file_on_another_commit_moves_it(ws, capsys):
    first = git(ws / "repo", "rev-parse", "HEAD~1")
    second = git(ws / "repo", "rev-parse", "HEAD")
    folder = ws / "results" / "legacy"
    assert invoke("migrate", ["legacy/good.json", "--repo", "repo", "--commit", first], capsys)[0] == 0
    assert [p.name[:8] for p in folder.glob("*-legacy-good.json")] == [first[:8]]
    code, out, _ = invoke("migrate", ["legacy/good.json", "--repo", "repo", "--commit", second], capsys)
    assert code == 0 and "moved from" in out
    assert [p.name[:8] for p in folder.glob("*-legacy-good.json")] == [second[:8]]
    # A dry run names the move and leaves both states alone.
    before = _tree_digest(ws)
    code, out, _ = invoke("migrate", ["legacy/good.json", "--repo", "repo", "--commit", first, "--dry-run"], capsys)
    assert code == 0 and "would move from" in out and _tree_digest(ws) == before
    # Rerunning on the same commit changes nothing.
    invoke("migrate", ["legacy/good.json", "--repo", "repo", "--commit", second], capsys)
    assert _tree_digest(ws) == before


# --- zeros and non-finite values in series: "cannot judge" that series, the rest intact ---------

@pytest.mark.parametrize("value", [0.0, -1.0, math.inf], ids=["zero", "negative", "inf"])
def test_report_names_a_series_it_cannot_judge_and_judges_the_rest(value, ws, capsys):
    code, out, err = invoke("report", [*R, "--format", "json", "--threshold", "1.05"], capsys)
    assert code == 0 and "warning" not in err, err
    clean = json.loads(out)
    assert clean["cannot_judge"] == []
    set_value(value)(ws)
    code, out, err = invoke("report", [*R, "--format", "json", "--threshold", "1.05"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("warning: cannot judge")]
    assert len(warnings) == 1 and ZERO_BENCH in warnings[0] and repr(value) in warnings[0]
    data = json.loads(out)
    (unjudged,) = data["cannot_judge"]
    assert unjudged["benchmark"] == ZERO_BENCH and unjudged["machine"] == MACHINE
    # The rest of the report is what it was without the bad value.
    assert data["series_checked"] == clean["series_checked"] > 1
    assert data["regressions"] == [r for r in clean["regressions"]
                                   if not (r["benchmark"] == ZERO_BENCH and r["params"] == unjudged["params"])]


def test_report_markdown_lists_the_unjudged_series(ws, capsys):
    set_value(0.0)(ws)
    code, out, _ = invoke("report", R, capsys)
    assert code == 0 and "Cannot judge 1 series" in out and ZERO_BENCH in out


def test_badges_survive_a_zero_value(ws, capsys):
    set_value(0.0)(ws)
    code, _, err = invoke("badges", [*R, "--html", "site"], capsys)
    assert code == 0, err
    assert "warning: cannot judge" in err and (ws / "site" / "badges" / "regressions.svg").is_file()


def test_a_truncated_result_file_is_skipped_by_name_and_the_rest_reported(ws, capsys):
    truncate_result(1)(ws)
    name = _result_files(ws)[1].name
    for tool, argv in (("report", R), ("summary", [*R, "--machine", MACHINE])):
        code, out, err = invoke(tool, argv, capsys)
        assert code == 0, err
        (warning,) = [line for line in err.splitlines() if line.startswith("warning: skipped")]
        assert name in warning and "not a readable asv result file" in warning
        assert out.strip()


def replace_result(index: int, text: str) -> Callable[[Path], None]:
    def corrupt(root: Path) -> None:
        _result_files(root)[index].write_text(text)
    return corrupt


DAMAGED = [
    ("value not a number", [set_value("fast")], "values that are not numbers left out"),
    ("value a list", [set_value([1, 2])], "values that are not numbers left out"),
    ("value true", [set_value(True)], "values that are not numbers left out"),
    ("result file without keys", [replace_result(0, '{"version": 2}')], "not a readable asv result file"),
    ("result file a list", [replace_result(0, "[]")], "not a readable asv result file"),
    ("result file empty", [replace_result(0, "")], "not a readable asv result file"),
    ("result file binary", [lambda root: _result_files(root)[0].write_bytes(b"\xff\xfe\x00")],
     "not a readable asv result file"),
]


@pytest.mark.parametrize("corrupt, warning", [d[1:] for d in DAMAGED], ids=[d[0] for d in DAMAGED])
def test_damaged_result_files_are_named_and_the_rest_reported(corrupt, warning, ws, capsys):
    for damage in corrupt:
        damage(ws)
    before = _tree_digest(ws)
    for tool, argv in (("report", R), ("report", [*R, "--detector", "asv"]), ("summary", [*R, "--machine", MACHINE]),
                       ("badges", [*R, "--html", str(ws.parent / "site")])):
        code, out, err = invoke(tool, argv, capsys)
        assert code == 0 and "Traceback" not in err and "internal error" not in err, (tool, err)
        if tool != "summary" or "result file" in warning:  # summary's tables skip a non-number value
            assert any(line.startswith("warning: ") and warning in line for line in err.splitlines()), (tool, err)
    assert _tree_digest(ws) == before


def test_nan_values_are_missing_values_not_errors(ws, capsys):
    set_value(math.nan)(ws)
    code, out, err = invoke("report", R, capsys)
    assert code == 0 and "warning" not in err and "Cannot judge" not in out


# --- publish: the site is built beside html/ and swapped in only when complete -----------------

def _site_config(ws: Path) -> Path:
    config = ws / "site.conf.json"
    config.write_text(json.dumps({"version": 1, "project": "attnbench", "repo": str(ROOT), "dvcs": "git",
                                  "branches": ["main"], "results_dir": "results", "html_dir": "html",
                                  "environment_type": "virtualenv"}))
    return config


def test_publish_failing_halfway_leaves_the_published_site_as_it_was(ws, capsys, monkeypatch):
    config = _site_config(ws)
    before = _tree_digest(ws)

    def asv_publish_that_dies(command, *args, **kwargs):
        html_dir = Path(command[command.index("--html-dir") + 1])
        (html_dir / "index.html").write_text("half a site")  # what a crash mid-publish leaves
        return subprocess.CompletedProcess(command, 3)

    monkeypatch.setattr(publish.subprocess, "run", asv_publish_that_dies)
    code, _, err = invoke("publish", ["--config", str(config), "--results", "results", "--html", "html"], capsys)
    assert_one_clean_error(code, err, 1, "asv publish failed")
    assert _tree_digest(ws) == before  # the old site, and no half-built copy beside it


@pytest.mark.slow
def test_publish_with_a_zero_value_publishes_and_warns(ws):
    set_value(0.0)(ws)
    config = _site_config(ws)
    done = subprocess.run([sys.executable, "-m", "tools.publish", "--config", str(config), "--results", "results",
                           "--html", "html"], cwd=ws, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "warning: cannot judge" in done.stderr
    assert (ws / "html" / "index.json").is_file() and (ws / "html" / "badges" / "regressions.svg").is_file()
    assert not (ws / "html" / "index.html").read_text().startswith("<html>the published site")


# --- writes: temporary file and rename ------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    from tools.lib import files

    target = tmp_path / "report.md"
    target.write_text("old report\n")
    target.chmod(0o644)

    class Boom(Exception):
        pass

    def fail(*args, **kwargs):
        raise Boom()

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(Boom):
        files.write_text_atomic(str(target), "new report\n")
    assert target.read_text() == "old report\n" and [p.name for p in tmp_path.iterdir()] == ["report.md"]
    monkeypatch.undo()
    files.write_text_atomic(str(target), "new report\n")
    assert target.read_text() == "new report\n" and (target.stat().st_mode & 0o777) == 0o644


def test_report_output_is_replaced_whole(ws, capsys):
    out_path = ws / "report.md"
    out_path.write_text("previous\n")
    code, _, err = invoke("report", [*R, "--output", "report.md"], capsys)
    assert code == 0, err
    assert out_path.read_text().startswith("### Benchmark regressions")
    assert sorted(p.name for p in ws.iterdir() if p.name.startswith(".tmp")) == []


# --- as programs: no traceback escapes the process ------------------------------------------------

PROGRAMS = [
    (["tools.report", "--results", "results", "--threshold", "nan"], 2, "not a finite number"),
    (["tools.report", "--results", "results", "--repo", "/no/such/repo"], 1, "does not exist"),
    (["tools.summary", "--results", "results", "--machine", MACHINE, "--commit", "0000"], 1, "no results for commit"),
    (["tools.migrate", "legacy", "--repo", "repo", "--commit", "HEAD", "--machine-file", "garbage.json"], 1,
     "not a readable asv machine file"),
    (["tools.bisect", "HEAD", "bench"], 1, "is not FROM..TO"),
    (["tools.badges", "--results", "results", "--report", "missing.json"], 1, "not found"),
    (["tools.machine", "--path", "garbage.json"], 1, "not a readable asv machine file"),
    (["tools.simulate", "--trials", "0"], 2, "positive integer"),
]


@pytest.mark.parametrize("argv, code, message", PROGRAMS, ids=[p[0][0] for p in PROGRAMS])
def test_as_a_program_the_error_is_one_line_without_traceback(argv, code, message, ws):
    (ws / "garbage.json").write_text("{{{")
    before = _tree_digest(ws)
    done = subprocess.run([sys.executable, "-m", *argv], cwd=ws, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(ws)})
    assert_one_clean_error(done.returncode, done.stderr, code, message)
    assert _tree_digest(ws) == before


def test_debug_shows_the_traceback(ws):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ATTNBENCH_DEBUG": "1"}
    done = subprocess.run([sys.executable, "-m", "tools.report", "--results", "results", "--repo", "/no/repo"],
                          cwd=ws, capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "Traceback" in done.stderr and "ToolError" in done.stderr


def test_there_is_no_detect_command_that_ignores_its_arguments(ws):
    done = subprocess.run([sys.executable, "-m", "tools.detect", "--threshold", "nan"], cwd=ws,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1


# --- the layout that makes this hold: commands at the edge, library below ------------------------

def _commands() -> list[Path]:
    return sorted(p for p in (ROOT / "tools").glob("*.py") if "def main(" in p.read_text())


def test_every_command_ends_at_the_one_error_edge():
    assert {p.stem for p in _commands()} >= set(COMMANDS)
    for path in _commands():
        tail = path.read_text().rstrip().splitlines()[-2:]
        assert tail == ['if __name__ == "__main__":', "    sys.exit(cli.run(main))"], path.name


def test_library_code_never_ends_the_process_or_reads_argv():
    import ast

    def is_main_guard(node) -> bool:
        return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and getattr(node.test.left, "id", None) == "__name__")

    for path in sorted((ROOT / "tools" / "lib").rglob("*.py")):
        tree = ast.parse(path.read_text())
        # What runs only as ``python -m tools.lib.x`` (a usage line) is not library code.
        tree.body = [node for node in tree.body if not is_main_guard(node)]
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            assert not (isinstance(node, ast.Name) and node.id in ("SystemExit", "exit", "quit")), where
            assert not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "sys" and node.attr in ("exit", "argv")), where
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "argparse" not in modules, where
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                raise AssertionError(f"{where}: library code prints (raise ToolError or warn ToolWarning)")


def test_a_reader_that_goes_away_is_not_an_error_message():
    """``python -m tools.x | head -1``: the closed pipe ends the command quietly, no traceback."""
    code = ("import sys\nfrom tools import cli\n"
            "def main(argv):\n    for _ in range(200000):\n        print('x' * 100)\n    return 0\n"
            "sys.exit(cli.run(main))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1 and err == ""
