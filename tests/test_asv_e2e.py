"""End to end: real `asv run` over a small commit range of a throwaway copy of the repo, then
`asv publish`. The range holds an "old" commit that lacks an implementation (a skip, not a
failure), a commit that does not build (asv goes on) and a good one."""
from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COPY = ["attention", "benchmarks", "asv_plugins", "setup.py", "asv.conf.json"]
BENCH_REGEX = r"bench_time\.TimeForward\.|Accuracy"
MACHINE = "e2e-box"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _make_repo(repo: Path) -> dict[str, str]:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, repo / name)
    (repo / ".gitignore").write_text(".asv/\nhtml/\nresults/\n__pycache__/\n")
    _git(repo, "init", "-q", "-b", "main")
    init = repo / "attention" / "__init__.py"
    original_init, original_setup = init.read_text(), (repo / "setup.py").read_text()
    init.write_text(original_init + '\nIMPLEMENTATIONS.pop("RingDilatedAttention", None)  # "old" commit\n')
    commits = {"old": _commit(repo, "old: no ring attention yet")}
    init.write_text(original_init)
    (repo / "setup.py").write_text('raise SystemExit("this commit does not build")\n' + original_setup)
    commits["broken"] = _commit(repo, "broken build")
    (repo / "setup.py").write_text(original_setup)
    commits["good"] = _commit(repo, "good")
    return commits


def _asv(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "ATTNBENCH_PROFILE": "quick", "ATTNBENCH_DEVICE": "cpu",
           "ASV_VENV_SYSTEM_PYTHON": sys.executable, "PYTHONPATH": ""}
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)


def _values(result_file: Path, benchmark: str) -> dict[tuple, object]:
    data = json.loads(result_file.read_text())
    row = dict(zip(data["result_columns"], data["results"][benchmark]))
    return dict(zip(itertools.product(*row["params"]), row["result"] or []))


@pytest.mark.slow
def test_asv_run_and_publish_over_a_commit_range(tmp_path):
    repo, home = tmp_path / "repo", tmp_path / "home"
    repo.mkdir(), home.mkdir()
    commits = _make_repo(repo)
    version = "%d.%d" % sys.version_info[:2]

    assert _asv(repo, home, "machine", "--yes", "--machine", MACHINE).returncode == 0
    empty = _asv(repo, home, "run", "-E", f"venv-system:{version}", "--machine", MACHINE, "HEAD..HEAD")
    assert "Traceback" not in empty.stdout + empty.stderr

    run = _asv(repo, home, "run", "-E", f"venv-system:{version}", "--machine", MACHINE, "--quick",
               "--bench", BENCH_REGEX, "ALL")
    log = run.stdout + run.stderr
    assert "Traceback" not in log, log[-4000:]

    results = repo / "results" / MACHINE
    by_commit = {label: list(results.glob(f"{sha[:8]}-venv-system-*.json")) for label, sha in commits.items()}
    assert by_commit["good"] and by_commit["old"], log[-4000:]

    good = _values(by_commit["good"][0], "bench_time.TimeForward.time_forward")
    old = _values(by_commit["old"][0], "bench_time.TimeForward.time_forward")
    ring = next(k for k in good if k[0] == "'RingDilatedAttention'")
    dense = next(k for k in good if k[0] == "'DenseAttention'")
    assert good[ring] and good[ring] > 0 and good[dense] > 0
    # Missing at the old commit: a skip (asv stores NaN; a failure would be None); the rest ran.
    assert isinstance(old[ring], float) and math.isnan(old[ring]) and old[dense] > 0
    if by_commit["broken"]:  # asv records the failed build without values, then goes on
        broken = _values(by_commit["broken"][0], "bench_time.TimeForward.time_forward")
        assert all(v is None for v in broken.values())

    accuracy = _values(by_commit["good"][0], "bench_accuracy.Accuracy.track_max_abs_error")
    assert 0 <= accuracy[("'DilatedAttention'", "'float32'", "False")] < 1e-4

    publish = _asv(repo, home, "publish")
    assert publish.returncode == 0, publish.stdout + publish.stderr
    assert (repo / "html" / "index.html").is_file()
    assert (repo / "html" / "graphs").is_dir()
