"""The main claim, end to end: asv over a real history finds a planted slowdown, and nothing in a quiet one.

Each history is a throwaway git repository made from this project's tracked files: 6 commits, in the
planted one ``DenseAttention.forward`` really does three times the work (no sleep, no change to the
benchmark). Every commit is measured as ``make bench`` measures a range (real ``asv run``, the
project's own asv configuration, samples recorded, rounds interleaved across the commits), then the
product's own path follows: ``asv find`` bisects, ``tools.report`` judges the history, ``tools.bisect``
confirms the candidate by re-measuring it, ``tools.publish`` writes the site, and headless Chromium
reads it. The site lists confirmed verdicts only, so the quiet history's site must list nothing
whatever the machine's noise did to asv's raw step list.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser_helpers import find_browser_or_skip

from site_assets.browse import view_site
from tools.lib.planted import Plant, bench_history, make_history

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
BENCH = "bench_time.TimeForward.time_forward"
# One parameter combination keeps each commit to a few seconds: asv matches the regex against
# "name(param, ...)".
BENCH_REGEX = BENCH.replace(".", r"\.") + r"\('DenseAttention', 2048,"
N_COMMITS = 6
PLANTED_AT = 3  # index in the history (0 = base): three measured commits either side
PLANTED_SLOWDOWN = '''

# A regression planted by tests/test_e2e_planted.py: the forward pass is computed three times.
_fast_forward = DenseAttention.forward


def _recomputing_forward(self, q, k, v, is_causal=None):
    for _ in range(3):
        out = _fast_forward(self, q, k, v, is_causal)
    return out


DenseAttention.forward = _recomputing_forward
'''


def run(cmd: list[str], cwd: Path, env: dict, timeout: int = 900) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc.stdout


PLANT = Plant("attention/dense.py", PLANTED_SLOWDOWN, "dense: recompute the forward pass")


@pytest.fixture(scope="module")
def asv_env(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASV_")}
    env.update(HOME=str(home), ATTNBENCH_PROFILE="quick", ATTNBENCH_THREADS="1",
               PYTHONPATH=str(PROJECT))
    return env


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("asv-env")


def asv(repo: Path, env: dict, *args: str, timeout: int = 900) -> str:
    return run([sys.executable, "-m", "asv", *args], cwd=repo, env=env, timeout=timeout)


def benchmark_history(root: Path, env_dir: Path, env: dict, plant: bool) -> tuple[Path, list[str]]:
    repo = root / "repo"
    shas = make_history(PROJECT, repo, env_dir, N_COMMITS, PLANTED_AT if plant else None, PLANT)
    asv(repo, env, "machine", "--yes", "--machine", "e2e")
    done = bench_history(repo, env, "e2e", shas, BENCH_REGEX)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return repo, shas


def publish(repo: Path, env: dict) -> None:
    run([sys.executable, "-m", "tools.publish", "--no-badges"], cwd=repo, env=env)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, env_dir, asv_env):
    """The planted history, its slowdown confirmed by ``tools.bisect`` (whose output is returned),
    then published."""
    repo, shas = benchmark_history(tmp_path_factory.mktemp("planted"), env_dir, asv_env, plant=True)
    bisect = run([sys.executable, "-m", "tools.bisect", f"{shas[0]}..{shas[-1]}", BENCH_REGEX,
                  "--machine", "e2e", "--repeat", "2", "--rounds", "4", "--no-neighbours"],
                 cwd=repo, env=asv_env)
    publish(repo, asv_env)
    return repo, shas, bisect


@pytest.fixture(scope="module")
def quiet(tmp_path_factory, env_dir, asv_env):
    repo, shas = benchmark_history(tmp_path_factory.mktemp("quiet"), env_dir, asv_env, plant=False)
    publish(repo, asv_env)
    return repo, shas


def site_regressions(repo: Path) -> list[tuple[str, str]]:
    """(benchmark name, first bad commit) for every regression on the published site."""
    data = json.loads((repo / "html" / "regressions.json").read_text())
    index = json.loads((repo / "html" / "index.json").read_text())
    revisions = {int(rev): sha for rev, sha in index["revision_to_hash"].items()}
    found = []
    for name, _graph, _params, _index, _last_value, _best, jumps in data["regressions"]:
        for _before_rev, after_rev, _before_value, _after_value in jumps:
            found.append((name, revisions[after_rev]))
    return found


def test_asv_find_names_the_planted_commit(planted, asv_env):
    repo, shas, _ = planted
    out = asv(repo, asv_env, "find", "--machine", "e2e", "--show-stderr", "--skip-save", "--launch-method", "forkserver",
              f"{shas[0]}..{shas[-1]}", BENCH_REGEX)
    assert f"Greatest regression found: {shas[PLANTED_AT][:8]}" in out, out[-2000:]


def test_confirmed_bisection_names_the_planted_commit(planted):
    _repo, shas, bisect = planted
    verdict = bisect.strip().splitlines()[-1]
    assert verdict.startswith(f"confirmed: {shas[PLANTED_AT][:7]} {PLANT.message} made {BENCH}"), \
        bisect[-3000:]


def test_report_flags_the_planted_commit(planted, asv_env):
    repo, shas, _ = planted
    report = json.loads(run([sys.executable, "-m", "tools.report", "--results", "results", "--format", "json"],
                            cwd=repo, env=asv_env))
    assert [r["first_bad"] for r in report["regressions"]] == [shas[PLANTED_AT]], report


def test_published_site_lists_the_planted_regression(planted):
    repo, shas, _ = planted
    assert site_regressions(repo) == [(f"{BENCH}('DenseAttention', 2048, 1, 4, 32, 'float32', False)",
                                       shas[PLANTED_AT])]


def test_quiet_history_has_no_regression(quiet, asv_env):
    repo, _shas = quiet
    assert site_regressions(repo) == []
    report = run([sys.executable, "-m", "tools.report", "--results", "results", "--format", "json"],
                 cwd=repo, env=asv_env)
    assert json.loads(report)["regressions"] == [], report


def test_site_in_a_real_browser(planted, tmp_path):
    find_browser_or_skip()
    repo, shas, _ = planted
    # graph the one parameter set the history measured (asv's menus use the values' reprs)
    graph = f"{BENCH}?p-implementation=%27DenseAttention%27&p-seq_len=2048"
    view = view_site(repo / "html", benchmark=graph, screenshot=tmp_path / "site.png")
    assert any(name.startswith(BENCH) for name in view.benchmarks), view.benchmarks
    assert view.graph_points >= N_COMMITS - 1, view.graph_points  # a point per measured commit
    assert shas[PLANTED_AT][:8] in view.regressions_text, view.regressions_text  # the confirmed verdict
    assert (tmp_path / "site.png").stat().st_size > 10_000
    # Benchmarks this test did not run have no graph files; a 404 for those is a data gap, not a
    # broken page. Anything else the browser logged (a script that failed to load or threw) is.
    errors = [e for e in view.js_errors if not ("/graphs/" in e and "404" in e)]
    assert not errors, errors
