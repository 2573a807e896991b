"""tools.migrate on a throwaway git repo with commits at known times and legacy files added at known commits."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys

import pytest
from asv.results import Results
from git_helpers import git

from tools import migrate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def _commit(repo, name, text, when):
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"add {name}", when=when)
    return git(repo, "rev-parse", "HEAD")


def _entry(impl, seq_len, samples=(30.1, 31.9, 31.6), error=None, **extra):
    return {"implementation": impl, "seq_len": seq_len, "batch_size": 1, "num_heads": 8, "head_dim": 64,
            "mean_time_ms": None if error else sum(samples) / len(samples), "std_time_ms": 1.0,
            "peak_memory_mb": None if error else 210.5, "samples": [] if error else list(samples),
            "error": error, **extra}


@pytest.fixture()
def repo(tmp_path):
    """Commits at noon on June 21-24 2025; a legacy file without a date is added by the June 23 one."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    shas = {}
    shas[21] = _commit(repo, "a.txt", "1", "2025-06-21T12:00:00+00:00")
    shas[22] = _commit(repo, "b.txt", "2", "2025-06-22T12:00:00+00:00")
    undated = {"DilatedAttention": [_entry("DilatedAttention", 2048, dtype="float16", causal=True)]}
    shas[23] = _commit(repo, "legacy/old_results.json", json.dumps(undated), "2025-06-23T12:00:00+00:00")
    shas[24] = _commit(repo, "c.txt", "3", "2025-06-24T12:00:00+00:00")
    return repo, shas


def _legacy_dir(repo):
    legacy = repo / "legacy"
    # 09:45 on the 22nd: before that day's noon commit, so it belongs to the 21st's commit.
    (legacy / "benchmark-results-2025-06-22-0945.json").write_text(json.dumps({
        "DilatedAttention": [_entry("DilatedAttention", 4096)],
        "BlockSparseAttention": [_entry("BlockSparseAttention", 4096, error="CUDA out of memory")],
    }))
    # A date only: the end of that day, so the 22nd's noon commit.
    (legacy / "benchmark_long_sequences_2025-06-22.json").write_text(json.dumps(
        [_entry("ImprovedDilatedAttention", 8192, samples=(10.0, 11.0, 12.0), device="cuda")]))
    (legacy / "benchmark-results-2025-06-25-1200.json").write_text('{"DilatedAttention": [ {"seq_len": 4')
    (legacy / "benchmark-results-2020-01-01-1200.json").write_text(json.dumps([_entry("X", 1024)]))
    return legacy


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _run(repo, *args):
    return subprocess.run([sys.executable, "-m", "tools.migrate", *args], cwd=repo, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": ROOT})


def _load_all(results_dir):
    loaded = {}
    for name in os.listdir(results_dir / "legacy"):
        if name != "machine.json":
            r = Results.load(str(results_dir / "legacy" / name), machine_name="legacy")
            loaded[r.env_name] = r
    return loaded


def test_each_file_lands_on_its_commit_and_rerun_changes_nothing(repo):
    repo, shas = repo
    legacy = _legacy_dir(repo)
    originals = _digests(legacy)

    first = _run(repo, "legacy", "--machine-file", str(repo / "none.json"))
    assert first.returncode == 1, first.stderr  # one corrupt and one unplaceable file
    out = first.stdout
    assert "SKIPPED legacy/benchmark-results-2025-06-25-1200.json: corrupt" in out
    assert "NOT PLACED legacy/benchmark-results-2020-01-01-1200.json" in out
    assert "no --commit given" in out

    results = _load_all(repo / "results")
    placed = {env: r.commit_hash for env, r in results.items()}
    assert placed == {
        "legacy-benchmark_results_2025_06_22_0945": shas[21],
        "legacy-benchmark_long_sequences_2025_06_22": shas[22],
        "legacy-old_results": shas[23],  # no date in the name: the commit that added it
    }
    assert _digests(legacy) == originals

    before = {p: p.read_bytes() for p in (repo / "results").rglob("*.json")}
    second = _run(repo, "legacy", "--machine-file", str(repo / "none.json"))
    assert "[written]" not in second.stdout and second.stdout.count("[unchanged]") == 3
    assert "benchmarks.json: unchanged" in second.stdout
    assert {p: p.read_bytes() for p in (repo / "results").rglob("*.json")} == before
    assert _digests(legacy) == originals


def test_values_failures_and_benchmark_definitions(repo):
    repo, shas = repo
    _legacy_dir(repo)
    _run(repo, "legacy", "--machine-file", str(repo / "none.json"))
    bench = json.loads((repo / "results" / "benchmarks.json").read_text())
    time_b = bench[migrate.TIME_BENCHMARK]
    assert time_b["unit"] == "seconds" and time_b["param_names"] == ["implementation", "seq_len", "shape"]
    assert "'BlockSparseAttention'" in time_b["params"][0] and "8192" in time_b["params"][1]

    results = _load_all(repo / "results")
    r = results["legacy-benchmark_results_2025_06_22_0945"]
    params = r.get_result_params(migrate.TIME_BENCHMARK)
    values = dict(zip([p[0] for p in itertools.product(*params)],
                      r.get_result_value(migrate.TIME_BENCHMARK, params)))
    assert values["'BlockSparseAttention'"] is None  # the error entry is a failed point
    # asv's value is the median of the samples, converted from ms to s.
    assert values["'DilatedAttention'"] == pytest.approx(0.0316, rel=1e-3)
    samples = r.get_result_samples(migrate.TIME_BENCHMARK, params)
    assert sorted(samples[1]) == pytest.approx([0.0301, 0.0316, 0.0319])
    memory = r.get_result_value(migrate.MEMORY_BENCHMARK, params)
    assert memory[1] == pytest.approx(210.5 * 2**20)
    old = results["legacy-old_results"]
    assert old.get_result_params(migrate.TIME_BENCHMARK)[2] == ["'b1 h8 d64 float16 causal'"]


def test_dry_run_writes_nothing_and_commit_places_the_rest(repo):
    repo, shas = repo
    _legacy_dir(repo)
    dry = _run(repo, "legacy", "--dry-run", "--machine-file", str(repo / "none.json"))
    assert "[dry run] PLACED" in dry.stdout and not (repo / "results").exists()
    forced = _run(repo, "legacy/benchmark-results-2020-01-01-1200.json", "--commit", shas[24][:10],
                  "--machine-file", str(repo / "none.json"))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert f"on {shas[24][:7]}" in forced.stdout and "by --commit" in forced.stdout


def test_missing_path_and_bad_commit_are_one_line_errors(repo):
    repo, _ = repo
    missing = _run(repo, "nope.json")
    assert missing.returncode != 0 and missing.stderr.strip() == "error: nope.json does not exist"
    bad = _run(repo, "legacy", "--commit", "deadbeef")
    assert bad.returncode != 0 and bad.stderr.strip().startswith("error: unknown revision")
    assert len(bad.stderr.strip().splitlines()) == 1
