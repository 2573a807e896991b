"""tools.bisect end to end: a throwaway repo with a tiny package whose commit c6 makes its loop 10x longer,
real ``asv find`` / ``asv run`` in a virtualenv environment, then the confirmation verdict."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANTED = "c6 loop ten times (planted slowdown)"

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "tinypkg"
version = "0.1"

[tool.setuptools]
packages = ["tinypkg"]
"""
PACKAGE = """\
def work(n):
    total = 0
    for i in range(n):
        total += i
    return total
"""
BENCHMARK = """\
import tinypkg


def time_work():
    tinypkg.work(10000)


time_work.number = 10
time_work.repeat = 3
time_work.rounds = 1
time_work.warmup_time = 0
"""
# The package is copied into the environment's site-packages instead of built as a wheel: same asv
# machinery (checkout, uninstall, install per commit), seconds instead of minutes on a busy 2-core box.
_SITE = "sysconfig.get_paths()['purelib'] + '/tinypkg'"
CONFIG = json.dumps({
    "version": 1, "project": "tinypkg", "repo": ".", "branches": ["main"],
    "environment_type": "virtualenv", "pythons": [f"{sys.version_info.major}.{sys.version_info.minor}"],
    "build_command": [],
    "install_command": [f"python -c \"import shutil, sysconfig; shutil.copytree('tinypkg', {_SITE}, "
                        f"dirs_exist_ok=True)\""],
    "uninstall_command": [f"python -c \"import shutil, sysconfig; shutil.rmtree({_SITE}, ignore_errors=True)\""],
    "benchmark_dir": "benchmarks", "env_dir": ".asv/env", "results_dir": "results", "html_dir": "html",
})


def _write(repo, files):
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)


def _git(repo, *args, when=None):
    env = dict(os.environ)
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    """c0: package + benchmark + asv config; c1..c9 harmless edits, except c6 (the slowdown)."""
    repo = tmp_path_factory.mktemp("tiny")
    _git(repo, "init", "-q", "-b", "main")
    _write(repo, {"pyproject.toml": PYPROJECT, "tinypkg/__init__.py": PACKAGE, "benchmarks/__init__.py": "",
                  "benchmarks/bench_work.py": BENCHMARK, "asv.conf.json": CONFIG,
                  ".gitignore": ".asv/\nresults/\nhtml/\n"})
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "c0 tiny package", when="2025-01-01T00:00:00+00:00")
    shas = {}
    for i in range(1, 10):
        if i == 6:
            slow = PACKAGE.replace("range(n)", "range(10 * n)")
            _write(repo, {"tinypkg/__init__.py": slow})
            message = PLANTED
        else:
            _write(repo, {"notes.txt": "\n".join(str(k) for k in range(i))})
            message = f"c{i} notes"
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", message, when=f"2025-01-0{i}T12:00:00+00:00")
        shas[i] = _git(repo, "rev-parse", "HEAD")
    home = tmp_path_factory.mktemp("home")  # asv reads ~/.asv-machine.json: keep the user's own out of it
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": ROOT}
    subprocess.run([sys.executable, "-m", "tools.machine", "--name", "tinybox", "--cpu-only"], check=True,
                   env=env, capture_output=True)
    return repo, shas, env


def _bisect(tiny_repo, *args):
    repo, _, env = tiny_repo
    return subprocess.run([sys.executable, "-m", "tools.bisect", *args, "--config", str(repo / "asv.conf.json"),
                           "--machine", "tinybox", "--repeat", "2", "--rounds", "6"],
                          capture_output=True, text=True, env=env, cwd=repo, timeout=400)


def test_a_range_that_does_not_exist_is_a_one_line_error(tiny_repo):
    done = _bisect(tiny_repo, "nosuchcommit..HEAD", "time_work")
    assert done.returncode == 1
    assert done.stderr.startswith("error: commit range 'nosuchcommit..HEAD' does not exist")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_planted_slowdown_is_found_and_confirmed(tiny_repo):
    _, shas, _ = tiny_repo
    done = _bisect(tiny_repo, "HEAD~9..HEAD", "time_work")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    verdict = done.stdout.strip().splitlines()[-1]
    expected = (rf"confirmed: {shas[6][:7]} {re.escape(PLANTED)} made bench_work\.time_work "
                rf"(\d+\.\d\d)x slower \(p=[0-9.e-]+\)")
    match = re.fullmatch(expected, verdict)
    assert match, done.stdout[-4000:]
    # The loop runs 10x as long; wall-clock noise on a shared 2-core box can reach ~3x either way,
    # which is why the planted step is this large.
    assert 3.0 < float(match.group(1)) < 30.0
    assert "[1/3 asv find]" in done.stdout  # asv's own progress is streamed
    # asv find's own single measurements are not stored: every stored result is an interleaved
    # re-measurement with its samples, nothing that make bench recorded was replaced.
    repo = tiny_repo[0]
    for path in (repo / "results" / "tinybox").glob("*-*.json"):
        data = json.loads(path.read_text())
        columns = data["result_columns"]
        [result] = data["results"].values()
        assert dict(zip(columns, result)).get("samples"), f"{path.name} holds no samples"


@pytest.mark.slow
def test_a_range_without_a_change_is_not_confirmed(tiny_repo):
    done = _bisect(tiny_repo, "HEAD~9..HEAD~4", "time_work")  # c1..c5: identical code
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    verdict = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"not confirmed: the step is within noise \(bench_work\.time_work \d+\.\d\dx, "
                        r"p=[0-9.e-]+\)", verdict), verdict


def _compare(tiny_repo, base, head, *extra):
    repo, _, env = tiny_repo
    return subprocess.run([sys.executable, "-m", "tools.compare", base, head, "--config", str(repo / "asv.conf.json"),
                           "--machine", "tinybox", "--rounds", "6", "--repeat", "2", *extra],
                          capture_output=True, text=True, env=env, cwd=repo, timeout=400)


@pytest.mark.slow
def test_compare_gate_fails_on_the_planted_slowdown_and_names_it(tiny_repo, tmp_path):
    repo, shas, _ = tiny_repo
    before = sorted(p.name for p in (repo / "results").rglob("*.json"))
    done = _compare(tiny_repo, shas[5], shas[6], "--json", str(tmp_path / "gate.json"))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("FAILED: 1 benchmark(s) regressed")
    assert "bench_work.time_work" in done.stdout.strip().splitlines()[-1]
    [entry] = json.loads((tmp_path / "gate.json").read_text())["entries"]
    assert entry["verdict"] == "regression" and entry["factor"] > 3.0
    assert sorted(p.name for p in (repo / "results").rglob("*.json")) == before  # results/ untouched


@pytest.mark.slow
def test_compare_gate_passes_a_change_that_touches_no_code(tiny_repo):
    _, shas, _ = tiny_repo
    done = _compare(tiny_repo, shas[3], shas[4])  # c4 edits notes.txt only
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "passed: no benchmark regressed by 1.10x or more"


def test_the_detector_candidate_is_chosen_with_asvs_own_benchmark_names():
    # asv matches -b / find regexes against name('string', 1024, False): a regex written for asv
    # must select the same parameter sets when the detector names the candidate.
    from tools.bisect import label_matches

    params = {"implementation": "ImprovedDilatedAttention", "seq_len": "1024", "dtype": "float32", "causal": "False"}
    name = "bench_time.TimeForward.time_forward"
    assert label_matches(r"bench_time\.TimeForward\.time_forward\('ImprovedDilatedAttention'", name, params)
    assert label_matches(r"time_forward\(ImprovedDilatedAttention, 1024", name, params)
    assert label_matches(r"'float32', False\)", name, params)
    assert not label_matches(r"time_forward\('DenseAttention'", name, params)
    assert label_matches(name, name, {})
