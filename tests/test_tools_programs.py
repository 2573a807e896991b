"""tools.publish, tools.report and tools.badges run as programs (``python -m tools.<name>``), the
way make and CI run them: publish on a copy of the committed results, report and badges on
results with a regression that was fixed later."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from asv import util as asv_util

from test_tools_report import N_COMMITS, _fake_commits, _hourly, write_results

ROOT = Path(__file__).resolve().parents[1]
HIGHER_IS_BETTER = {"tokens", "tokens/s", "TFLOP/s"}


def run_tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"tools.{name}", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), "ATTNBENCH_DEBUG": ""})


def _digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _config(tmp: Path) -> Path:
    """asv.conf.json with results and html in ``tmp`` (the repository stays this checkout)."""
    conf = asv_util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(ROOT), results_dir=str(tmp / "results"), html_dir=str(tmp / "html"),
                env_dir=str(tmp / "env"), plugins=[])
    path = tmp / "asv.conf.json"
    path.write_text(json.dumps(conf))
    return path


def _one_line_error(done: subprocess.CompletedProcess, *must_name: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    for text in must_name:
        assert text in lines[-1], (text, lines[-1])


def _saved_names() -> set[str]:
    return {name for path in (ROOT / "results").glob("benchmarks-*.saved")
            for name in json.loads(path.read_text()) if name != "version"}


def _gpu_only(definitions: dict) -> list[str]:
    """Committed definitions that only the GPU machine's .saved file holds besides benchmarks.json
    (classes the CPU suite does not define)."""
    from test_benchmarks import CLASSES

    cpu_classes = {f"{cls.__module__.split('.')[-1]}.{cls.__name__}" for cls in CLASSES}
    return [name for name in definitions if name in _saved_names() and name.rsplit(".", 1)[0] not in cpu_classes]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """python -m tools.publish over a copy of the committed results (all machines)."""
    tmp = tmp_path_factory.mktemp("publish")
    shutil.copytree(ROOT / "results", tmp / "results")
    # As after a CPU `asv run`: benchmarks.json defines only what this machine runs; the GPU-only
    # definitions are left in the GPU machine's .saved file for publish to bring back.
    target = tmp / "results" / "benchmarks.json"
    definitions = json.loads(target.read_text())
    for name in _gpu_only(definitions):
        del definitions[name]
    target.write_text(json.dumps(definitions))
    before = _digests(tmp / "results")
    done = run_tool("publish", "--config", str(_config(tmp)), "--results", str(tmp / "results"),
                    "--html", str(tmp / "html"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp, done, before


@pytest.mark.slow
def test_publish_writes_the_site_for_every_machine(published):
    tmp, done, _ = published
    html = tmp / "html"
    index = json.loads((html / "index.json").read_text())
    machines = {p.name for p in (ROOT / "results").iterdir() if p.is_dir() and (p / "machine.json").exists()}
    assert machines and machines <= set(index["params"]["machine"])
    saved = _saved_names()
    gpu_only = _gpu_only(json.loads((ROOT / "results" / "benchmarks.json").read_text()))
    assert len(gpu_only) >= 2, gpu_only  # the fixture took them out of benchmarks.json
    assert saved <= set(index["benchmarks"]), "GPU-only definitions must reach the site"
    merged = json.loads((tmp / "results" / "benchmarks.json").read_text())
    assert set(gpu_only) <= set(merged), "publish puts them back into benchmarks.json"
    gpu_graphs = list((html / "graphs").rglob("bench_capacity.LargestFit.track_largest_seq_len.json"))
    assert gpu_graphs, "the GPU machine's capacity history is graphed"
    page = (html / "index.html").read_text()
    assert "vendor/" in page and not re.search(r"<script[^>]+src=\"https?://", page), "assets served locally"
    badge = (html / "badges" / "regressions.svg").read_text()
    assert re.search(r"regressions: \d+", badge)


@pytest.mark.slow
def test_publish_keeps_only_real_regressions_on_the_page(published):
    tmp, done, _ = published
    units = {name: d.get("unit") for name, d in json.loads((tmp / "results" / "benchmarks.json").read_text()).items()
             if isinstance(d, dict)}
    entries = json.loads((tmp / "html" / "regressions.json").read_text())["regressions"]
    names = [e[0].split("(")[0] for e in entries]
    # Only confirmed verdicts are listed; the committed results have none (no confirmation run).
    assert names == [], "asv's raw steps are not shown: only confirmed verdicts are"
    unconfirmed = re.search(r"(\d+) unconfirmed step\(s\)", done.stdout)
    assert unconfirmed and int(unconfirmed.group(1)) >= 1, done.stdout
    feed = (tmp / "html" / "regressions.xml").read_text()
    assert not [n for n, unit in units.items() if unit in HIGHER_IS_BETTER and f"{n}(" in feed]
    removed = re.search(r"(\d+) rise\(s\)", done.stdout)
    assert removed and int(removed.group(1)) >= 1, done.stdout


@pytest.mark.slow
def test_publish_changes_no_result_file(published):
    tmp, _, before = published
    after = _digests(tmp / "results")
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed == {"benchmarks.json"}  # given the other machines' definitions back, nothing else
    assert set(after) == set(before)


def test_publish_answers_bad_saved_json_in_one_line_and_changes_nothing(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(ROOT / "results" / "benchmarks.json", results / "benchmarks.json")
    (results / "benchmarks-broken.saved").write_text('{"bench_time.TimeForward.time_forward": {')
    before = _digests(results)
    done = run_tool("publish", "--config", str(_config(tmp_path)), "--results", str(results),
                    "--html", str(tmp_path / "html"))
    _one_line_error(done, "benchmarks-broken.saved")
    assert _digests(results) == before and not (tmp_path / "html").exists()


def test_publish_without_results_is_a_one_line_error(tmp_path):
    (tmp_path / "results").mkdir()
    done = run_tool("publish", "--config", str(_config(tmp_path)), "--results", str(tmp_path / "results"),
                    "--html", str(tmp_path / "html"))
    _one_line_error(done, "benchmarks.json")


# ---------------------------------------------------------------------------------------------
# A regression that was fixed: reported, but as fixed; the badge counts only open ones

UP_AT, DOWN_AT = 5, 11  # commits 5..10 are twice as slow; 11.. are back to normal


@pytest.fixture(scope="module")
def fixed_and_open(tmp_path_factory):
    """Two machines: m-fixed (a 2x step that went away), m-open (a 2x step that stays)."""
    d = tmp_path_factory.mktemp("fixed")
    commits = _fake_commits(N_COMMITS)
    write_results(d, commits, _hourly(N_COMMITS), lambda i: 2.0 if UP_AT <= i < DOWN_AT else 1.0,
                  machine="m-fixed")
    write_results(d, commits, _hourly(N_COMMITS), lambda i: 2.0 if i >= UP_AT else 1.0, seed=5,
                  machine="m-open")
    return d, commits


@pytest.mark.parametrize("detector", ["asv", "samples"])
def test_report_marks_a_fixed_regression_fixed_and_an_open_one_open(fixed_and_open, detector):
    d, commits = fixed_and_open
    done = run_tool("report", "--results", str(d), "--detector", detector, "--format", "json")
    assert done.returncode == 0, done.stderr
    regs = json.loads(done.stdout)["regressions"]
    by_machine = {}
    for r in regs:
        by_machine.setdefault(r["machine"], []).append(r)
    # asv's own detector only reports a step still present at the end; the sample-aware one
    # reports every step, and a step that went away as fixed.
    assert set(by_machine) == ({"m-fixed", "m-open"} if detector == "samples" else {"m-open"}), regs
    for r in by_machine.get("m-fixed", []):
        assert (r["last_good"], r["first_bad"]) == (commits[UP_AT - 1], commits[UP_AT])
        assert r["open"] is False, r
    assert all(r["open"] is True for r in by_machine["m-open"])
    md = run_tool("report", "--results", str(d), "--detector", detector).stdout
    rows = [line for line in md.splitlines() if "| `suite.time_f` |" in line]
    assert rows and all(line.rstrip(" |").endswith("fixed") == ("m-fixed" in line) for line in rows), md


def test_fail_on_regression_and_the_badge_count_only_open_ones(fixed_and_open, tmp_path):
    d, _ = fixed_and_open
    report = tmp_path / "report.json"
    done = run_tool("report", "--results", str(d), "--format", "json", "--output", str(report),
                    "--fail-on-regression")
    assert done.returncode == 1  # regressions were found (one still open)
    regs = json.loads(report.read_text())["regressions"]
    open_count = sum(r["open"] for r in regs)
    assert 0 < open_count < len(regs)
    badges = run_tool("badges", "--results", str(d), "--html", str(tmp_path / "html"), "--report", str(report))
    assert badges.returncode == 0, badges.stderr
    svg = (tmp_path / "html" / "badges" / "regressions.svg").read_text()
    assert f"regressions: {open_count} unconfirmed" in svg and "#fe7d37" in svg  # orange: open, not yet confirmed


def test_badge_is_green_when_every_regression_was_fixed(tmp_path):
    d = tmp_path / "results"
    write_results(d, _fake_commits(N_COMMITS), _hourly(N_COMMITS), lambda i: 2.0 if UP_AT <= i < DOWN_AT else 1.0)
    assert json.loads(run_tool("report", "--results", str(d), "--format", "json").stdout)["regressions"]
    done = run_tool("badges", "--results", str(d), "--html", str(tmp_path / "html"))
    assert done.returncode == 0, done.stderr
    svg = (tmp_path / "html" / "badges" / "regressions.svg").read_text()
    assert "regressions: 0" in svg and "#4c1" in svg


def test_verdicts_call_a_step_that_went_away_fixed(fixed_and_open):
    """The site's verdicts (tools.lib.verdicts): the same history as the report sees it."""
    from tools.lib.verdicts import verdicts_for

    d, commits = fixed_and_open
    statuses = {}
    for v in verdicts_for(str(d)):
        statuses.setdefault(v.machine, set()).add(v.status)
        assert (v.parent, v.commit) == (commits[UP_AT - 1], commits[UP_AT]), v
    assert statuses == {"m-fixed": {"fixed"}, "m-open": {"candidate"}}, statuses
