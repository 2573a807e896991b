"""Noise-floor statistics against simulated runs of known variance, the noise file, the two-run
table and the tool's bad-input errors."""
from __future__ import annotations

import json
import math
import random

import pytest

from tools import cli, noise as noise_tool
from tools.lib import noise
from tools.lib.errors import ToolError

SETTINGS = noise.DetectorSettings(alpha=0.01, power=0.8)


def _simulated_runs(rng: random.Random, runs: int, samples: int, between: float, within: float,
                    level: float = 1e-3) -> list[list[float]]:
    """Each run shifted as a whole by N(0, between) in log, its samples spread by N(0, within)."""
    out = []
    for _ in range(runs):
        shift = rng.gauss(0.0, between)
        out.append([level * math.exp(shift + rng.gauss(0.0, within)) for _ in range(samples)])
    return out


def test_within_and_between_cv_recover_the_simulated_variances():
    rng = random.Random(7)
    runs = _simulated_runs(rng, runs=60, samples=20, between=0.03, within=0.05)
    got = noise.set_noise(runs, SETTINGS)
    assert got.within_cv == pytest.approx(0.05, rel=0.05)
    # A run's level moves by the run shift plus its samples' mean error.
    assert got.between_cv == pytest.approx(math.sqrt(0.03 ** 2 + 0.05 ** 2 / 20), rel=0.2)
    assert got.median == pytest.approx(1e-3, rel=0.02)
    assert got.stable and got.runs == 60


def test_within_run_noise_alone_sets_a_floor_under_the_between_estimate():
    # Two runs that happen to agree exactly: the level still carries within / sqrt(n).
    runs = [[1.0, 1.1, 0.9, 1.0], [1.0, 1.1, 0.9, 1.0]]
    got = noise.set_noise(runs, SETTINGS)
    assert got.between_cv == 0.0 and got.within_cv > 0
    assert got.mde == pytest.approx(noise.minimum_detectable_effect(got.within_cv / 2, SETTINGS))


def test_mde_is_the_slowdown_a_one_sided_test_catches_with_the_stated_power():
    """Monte Carlo: two commits' levels with sd s, the second slower by the MDE; a one-sided test
    at alpha on their difference rejects in ~80% of trials (and in ~1% without the slowdown)."""
    rng = random.Random(11)
    s = 0.01
    mde = noise.minimum_detectable_effect(s, SETTINGS)
    critical = 2.3263478740408408 * s * math.sqrt(2)  # z[0.99] for the difference of two levels
    trials = 20000
    caught = sum(rng.gauss(math.log1p(mde), s) - rng.gauss(0.0, s) > critical for _ in range(trials))
    false = sum(rng.gauss(0.0, s) - rng.gauss(0.0, s) > critical for _ in range(trials))
    assert caught / trials == pytest.approx(0.8, abs=0.015)
    assert false / trials == pytest.approx(0.01, abs=0.004)
    # More reference commits make the old level sharper, so smaller steps show.
    sharper = noise.DetectorSettings(alpha=0.01, power=0.8, reference_commits=10)
    assert noise.minimum_detectable_effect(s, sharper) < mde


def test_a_set_missing_from_a_run_is_unstable():
    got = noise.set_noise([[1.0, 1.01], None, [1.0, 0.99]], SETTINGS)
    assert not got.stable and got.runs == 3 and math.isfinite(got.between_cv)
    nothing = noise.set_noise([None, None], SETTINGS)
    assert not nothing.stable and math.isnan(nothing.median)


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="finite and > 0"):
        noise.set_noise([[1.0, -1.0]], SETTINGS)


def test_detector_settings_follow_the_detector():
    from tools.lib import detect
    import inspect

    default = inspect.signature(detect.detect_steps).parameters["alpha"].default
    assert noise.detector_settings().alpha == getattr(detect, "DEFAULT_ALPHA", default)


def _runs_of_two_sets():
    name = "bench_time.TimeForward.time_forward"
    a = {(name, ("'DenseAttention'", "1024")): [1.0e-3, 1.02e-3, 0.98e-3],
         (name, ("'DilatedAttention'", "1024")): [2.0e-3, 2.0e-3]}
    b = {(name, ("'DenseAttention'", "1024")): [1.1e-3, 1.1e-3, 1.1e-3],
         (name, ("'DilatedAttention'", "1024")): None}
    return name, a, b


def test_noise_file_round_trip(tmp_path):
    name, a, b = _runs_of_two_sets()
    doc = noise.noise_document([a, b], "box", "f" * 40, "2026-01-01T00:00:00+00:00", "quick", SETTINGS)
    path = noise.noise_path(str(tmp_path), "box")
    noise.write_noise_file(path, doc)
    raw = json.loads(open(path).read())
    assert raw["runs"] == 2 and raw["commit"] == "f" * 40 and raw["profile"] == "quick"
    entries = {tuple(e["params"]): e for e in raw["benchmarks"][name]}
    assert entries[("'DilatedAttention'", "1024")]["stable"] is False
    assert entries[("'DilatedAttention'", "1024")]["between_cv"] is None  # one run: not computable
    floors = noise.load_noise_floors(str(tmp_path), "box")
    dense = floors[(name, ("'DenseAttention'", "1024"))]
    assert dense.stable and dense.runs == 2
    assert dense.between_cv == pytest.approx(abs(math.log(1.1) - sum(math.log(x) for x in [1.0, 1.02, 0.98]) / 3)
                                             / math.sqrt(2), rel=1e-6)
    assert math.isnan(floors[(name, ("'DilatedAttention'", "1024"))].between_cv)
    assert noise.load_noise_floors(str(tmp_path), "other-box") == {}


@pytest.mark.parametrize("content", ["{not json", '{"runs": 2}', '{"runs": 2, "benchmarks": {"b": [{"params": []}]}}'])
def test_corrupt_noise_file_is_a_tool_error(tmp_path, content):
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "box.json").write_text(content)
    with pytest.raises(ToolError, match="noise file"):
        noise.load_noise_floors(str(tmp_path), "box")


def test_two_run_rows_and_summary():
    name, a, b = _runs_of_two_sets()
    rows = noise.two_run_rows(a, b)
    assert len(rows) == 1  # the set that failed in run 2 has no pair
    assert rows[0].difference == pytest.approx(0.1)
    rows = [noise.TwoRunRow("x", (str(i),), 1.0, 1.0 + d) for i, d in enumerate([0.0, 0.1, 0.2, 0.3, 1.0])]
    summary = noise.two_run_summary(rows)
    assert summary["count"] == 5 and summary["median"] == pytest.approx(0.2) and summary["max"] == pytest.approx(1.0)
    assert noise.TwoRunRow("x", (), 2.0, 1.0).difference == pytest.approx(1.0)  # symmetric: 2x either way
    text = noise.two_run_markdown(rows, "title")
    assert "| all | 5 | 20.0% |" in text


def _asv_result_file(path, samples_a, samples_b=None):
    """A minimal asv (format 2) result file with one parameterised time benchmark."""
    columns = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
               "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]
    medians = [None if s is None else sorted(s)[len(s) // 2] for s in (samples_a, samples_b)]
    row = [medians, [["'A'", "'B'"]], "v1", 1796190018000, 1.0, [None, None], [None, None], [None, None],
           [None, None], [1, 1], [3, 3], [samples_a, samples_b], None]
    doc = {"commit_hash": "a" * 40, "env_name": "env", "date": 1, "params": {"machine": "box"},
           "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": columns,
           "results": {"bench_time.T.time_x": row}, "durations": {}, "version": 2}
    path.write_text(json.dumps(doc))
    return str(path)


def test_read_run_keeps_samples_and_marks_failures(tmp_path):
    path = _asv_result_file(tmp_path / "r.json", [1.0, 2.0, 3.0], None)
    header, sets = noise.read_run(path)
    assert header["commit"] == "a" * 40 and header["machine"] == "box"
    assert sets[("bench_time.T.time_x", ("'A'",))] == [1.0, 2.0, 3.0]
    assert sets[("bench_time.T.time_x", ("'B'",))] is None


def test_tool_floor_and_compare_from_files(tmp_path, capsys):
    one = _asv_result_file(tmp_path / "one.json", [1.0, 1.1, 0.9], [2.0, 2.0, 2.1])
    two = _asv_result_file(tmp_path / "two.json", [1.05, 1.1, 1.0], [2.0, 2.1, 2.0])
    out = tmp_path / "floor.json"
    assert cli.run(noise_tool.main, ["floor", one, two, "--output", str(out), "--profile", "quick"]) == 0
    assert json.loads(out.read_text())["benchmarks"]["bench_time.T.time_x"][0]["stable"] is True
    assert cli.run(noise_tool.main, ["floor", one, two, "--output", str(out)]) == 1  # exists: not replaced
    assert "--replace" in capsys.readouterr().err
    assert cli.run(noise_tool.main, ["compare", one, two]) == 0
    assert "| all | 2 |" in capsys.readouterr().out


def test_tool_bad_input_is_one_line(tmp_path, capsys):
    assert cli.run(noise_tool.main, ["measure", "--profile", "fastest"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown profile 'fastest'") and err.count("\n") == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert cli.run(noise_tool.main, ["compare", str(bad), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not an asv result file" in err and err.count("\n") == 1


def test_tool_refuses_the_gpu_profile_without_cuda_events(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.run(noise_tool.main, ["measure", "--profile", "full"]) == 1
    err = capsys.readouterr().err
    assert "CUDA events" in err and err.count("\n") == 1


def test_tool_summary_per_benchmark(tmp_path, capsys):
    one = _asv_result_file(tmp_path / "one.json", [1.0, 1.1, 0.9], [2.0, 2.0, 2.1])
    two = _asv_result_file(tmp_path / "two.json", [1.05, 1.1, 1.0], None)
    out = tmp_path / "floor.json"
    assert cli.run(noise_tool.main, ["floor", one, two, "--output", str(out), "--profile", "quick"]) == 0
    assert cli.run(noise_tool.main, ["summary", str(out)]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| bench_time.T.time_x")]
    assert row and row[0].split("|")[2:4] == [" 2 ", " 1 "]  # two sets, one failed in a run
    (tmp_path / "bad.json").write_text('{"machine": "x"}')
    assert cli.run(noise_tool.main, ["summary", str(tmp_path / "bad.json")]) == 1
    assert "not a noise file" in capsys.readouterr().err


def test_profile_check(capsys):
    assert cli.run(noise_tool.main, ["check", "--profile", "quick"]) == 0
    assert cli.run(noise_tool.main, ["check", "--profile", "tiny"]) == 1
    assert capsys.readouterr().err == "error: unknown profile 'tiny'; expected one of full, quick, standard\n"
