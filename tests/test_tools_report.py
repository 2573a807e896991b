"""tools.report on asv result directories written with asv's own Results API: a planted 2x step, pure noise."""
from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys

import pytest
from asv import util as asv_util
from asv.results import Results
from asv.runner import BenchmarkResult
from git_helpers import git

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = {"name": "suite.time_f", "params": [["1024", "4096"]], "param_names": ["seq_len"], "version": "v1",
         "unit": "seconds", "type": "time"}
N_COMMITS, STEP_AT = 16, 9  # commit 9 (0-based) is the first one twice as slow


def _fake_commits(n):
    return [hashlib.sha1(f"commit {i}".encode()).hexdigest() for i in range(n)]


def write_results(results_dir, commits, dates, factor_of, seed=0, machine="m1"):
    """One result file per commit: 12 lognormal samples (3% noise) around factor_of(i) ms."""
    rng = random.Random(seed)
    asv_util.write_json(str(results_dir / "benchmarks.json"), {BENCH["name"]: BENCH}, 2)
    asv_util.write_json(str(results_dir / machine / "machine.json"), {"machine": machine}, 1)
    for i, (sha, date) in enumerate(zip(commits, dates)):
        r = Results({"machine": machine, "python": "3.11"}, {}, sha, date, "3.11", "env", {})
        samples = [[factor_of(i) * 1e-3 * rng.lognormvariate(0, 0.03) for _ in range(12)] for _ in range(2)]
        r.add_result(BENCH, BenchmarkResult(result=[s[0] for s in samples], samples=samples, number=[1, 1],
                                            errcode=0, stderr="", profile=None), record_samples=True)
        r.save(str(results_dir))


def report(*args):
    done = subprocess.run([sys.executable, "-m", "tools.report", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT}, cwd=ROOT)
    return done


def _hourly(n):
    return [1_750_000_000_000 + i * 3_600_000 for i in range(n)]


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    d = tmp_path_factory.mktemp("stepped")
    commits = _fake_commits(N_COMMITS)
    write_results(d, commits, _hourly(N_COMMITS), lambda i: 2.0 if i >= STEP_AT else 1.0)
    return d, commits


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    d = tmp_path_factory.mktemp("noise")
    write_results(d, _fake_commits(N_COMMITS), _hourly(N_COMMITS), lambda i: 1.0, seed=1)
    return d


@pytest.mark.parametrize("detector", ["asv", "samples"])
def test_planted_step_is_named_with_its_commits(stepped, detector):
    d, commits = stepped
    done = report("--results", str(d), "--detector", detector, "--format", "json", "--fail-on-regression")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["detector"] == detector
    regs = data["regressions"]
    assert sorted(r["params"]["seq_len"] for r in regs) == ["1024", "4096"]
    for r in regs:
        assert r["benchmark"] == "suite.time_f" and r["machine"] == "m1"
        assert (r["last_good"], r["first_bad"]) == (commits[STEP_AT - 1], commits[STEP_AT])
        assert r["ratio"] == pytest.approx(2.0, rel=0.08) and r["open"]


@pytest.mark.parametrize("detector", ["asv", "samples"])
def test_pure_noise_reports_nothing(noise, detector):
    done = report("--results", str(noise), "--detector", detector, "--format", "json", "--fail-on-regression")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["regressions"] == []


def test_markdown_table_names_the_commits(stepped, tmp_path):
    d, commits = stepped
    out = tmp_path / "summary.md"
    done = report("--results", str(d), "--detector", "asv", "--output", str(out))
    assert done.returncode == 0 and done.stdout == ""
    text = out.read_text()
    assert text.count("| `suite.time_f` |") == 2
    assert f"`{commits[STEP_AT - 1][:8]}`" in text and f"`{commits[STEP_AT][:8]}`" in text
    assert "x slower" in text


def test_threshold_above_the_step_hides_it(stepped):
    d, _ = stepped
    done = report("--results", str(d), "--detector", "samples", "--threshold", "3", "--format", "json")
    assert json.loads(done.stdout)["regressions"] == []


def test_bad_threshold_and_missing_results_are_clear_errors(tmp_path):
    bad = report("--results", str(tmp_path), "--threshold", "0.9")
    assert bad.returncode == 2 and "argument --threshold: must be a ratio above 1" in bad.stderr
    missing = report("--results", str(tmp_path))
    assert missing.returncode == 1 and "benchmarks.json not found" in missing.stderr




@pytest.fixture(scope="module")
def real_repo(tmp_path_factory):
    """A git repo of N_COMMITS commits; results for them whose stored dates are all the same."""
    repo = tmp_path_factory.mktemp("repo")
    git(repo, "init", "-q", "-b", "main")
    commits = []
    for i in range(N_COMMITS):
        (repo / "f.txt").write_text(str(i))
        git(repo, "add", "f.txt")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"c{i}",
             when=f"2025-01-01T{i:02d}:00:00+00:00")
        commits.append(git(repo, "rev-parse", "HEAD"))
    results = repo / "results"
    # Equal dates: only the repository's order can put the commits in sequence.
    write_results(results, commits, [1_750_000_000_000] * N_COMMITS, lambda i: 2.0 if i >= STEP_AT else 1.0)
    return repo, commits


def test_repo_order_places_the_step(real_repo):
    repo, commits = real_repo
    done = report("--results", str(repo / "results"), "--repo", str(repo), "--detector", "samples",
                  "--format", "json")
    regs = json.loads(done.stdout)["regressions"]
    assert regs and all((r["last_good"], r["first_bad"]) == (commits[STEP_AT - 1], commits[STEP_AT]) for r in regs)


def test_the_checkout_holding_the_results_orders_them_without_repo(real_repo):
    repo, commits = real_repo
    done = report("--results", str(repo / "results"), "--detector", "samples", "--format", "json")
    regs = json.loads(done.stdout)["regressions"]
    assert regs and all((r["last_good"], r["first_bad"]) == (commits[STEP_AT - 1], commits[STEP_AT]) for r in regs)


def test_results_of_commits_the_checkout_lacks_fall_back_to_dates(real_repo, tmp_path):
    repo, commits = real_repo
    other = tmp_path / "other"  # a checkout with a history of its own: none of the results' commits
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    (other / "f.txt").write_text("x")
    git(other, "add", "f.txt")
    git(other, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    hours = [1_750_000_000_000 + 3_600_000 * i for i in range(N_COMMITS)]
    write_results(other / "results", commits, hours, lambda i: 2.0 if i >= STEP_AT else 1.0)
    done = report("--results", str(other / "results"), "--detector", "samples", "--format", "json")
    assert "left out" not in done.stderr, done.stderr
    regs = json.loads(done.stdout)["regressions"]
    assert regs and all(r["first_bad"] == commits[STEP_AT] for r in regs)


@pytest.mark.slow
def test_published_site_is_read_too(real_repo):
    repo, commits = real_repo
    conf = {"version": 1, "project": "t", "repo": ".", "branches": ["main"], "environment_type": "virtualenv",
            "results_dir": "results", "html_dir": "html"}
    (repo / "asv.conf.json").write_text(json.dumps(conf))
    subprocess.run([sys.executable, "-m", "asv", "publish", "--config", str(repo / "asv.conf.json")],
                   check=True, capture_output=True, cwd=repo)
    done = report("--html", str(repo / "html"), "--format", "json")
    data = json.loads(done.stdout)
    assert data["detector"] == "asv"  # a site keeps no samples
    assert data["regressions"]
    assert all((r["last_good"], r["first_bad"]) == (commits[STEP_AT - 1], commits[STEP_AT])
               for r in data["regressions"])


def test_samples_detector_falls_back_to_asv_when_missing(stepped, monkeypatch):
    from tools.lib import regressions
    from tools.lib.errors import ToolWarning
    from tools.lib.series import series_from_results

    d, commits = stepped
    monkeypatch.setitem(sys.modules, "tools.lib.detect", None)  # import of tools.lib.detect now fails
    with pytest.warns(ToolWarning, match="sample-aware detector unavailable"):
        found, used = regressions.find_regressions(series_from_results(str(d)), "samples", 1.1)
    assert used == "asv"
    assert {(r.last_good, r.first_bad) for r in found} == {(commits[STEP_AT - 1], commits[STEP_AT])}


@pytest.mark.parametrize("detector", ["asv", "samples"])
def test_a_throughput_drop_is_the_regression_and_a_rise_is_not(detector):
    from tools.lib.regressions import find_regressions
    from tools.lib.series import Point, Series

    rng = random.Random(7)

    def series(unit: str, factor_after: float) -> Series:
        points = []
        for i in range(12):
            level = 100.0 * (factor_after if i >= 6 else 1.0)
            samples = [level * (1 + rng.gauss(0, 0.01)) for _ in range(5)]
            points.append(Point(commit=f"{i:040x}", date=i, value=sorted(samples)[2], samples=samples, weight=1.0))
        return Series("m", "bench_throughput.ForwardThroughput.track_tflops", {}, unit, points)

    found, _ = find_regressions([series("TFLOP/s", 0.5), series("TFLOP/s", 2.0)], detector, 1.2)
    assert len(found) == 1
    drop = found[0]
    assert drop.first_bad == f"{6:040x}" and drop.before == pytest.approx(100, rel=0.05)
    assert drop.after == pytest.approx(50, rel=0.05) and drop.ratio == pytest.approx(2.0, rel=0.05)
    # the same numbers as times (lower is better): the rise is the regression
    found, _ = find_regressions([series("seconds", 2.0), series("seconds", 0.5)], detector, 1.2)
    assert len(found) == 1 and found[0].after == pytest.approx(200, rel=0.05)
