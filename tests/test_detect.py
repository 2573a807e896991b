"""tools.lib.detect on synthetic histories whose truth is known by construction.

Histories are generated here with numpy (not with tools.simulate) so that a bug shared by the
simulator and the detector cannot hide. Seeds are fixed; counts of allowed misses are binomial
bounds, loose for a working detector and tight for a broken one (an uncorrected test flags ~20% of
pure-noise histories; a test that ignores commit offsets flags most of them).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from tools.lib.detect import Step, asv_steps, detect_steps

COMMITS = [f"c{i:02d}" for i in range(20)]


def history(rng: np.random.Generator, steps: dict[int, float], cv: float = 0.05, samples: int = 10,
            commits: int = 20, offset_cv: float = 0.0, outlier_rate: float = 0.0) -> np.ndarray:
    """(commits, samples) times in ms: lognormal noise, optional per-commit offset and 2x outliers;
    from each key of ``steps`` on, times are multiplied by its value."""
    sigma = math.sqrt(math.log1p(cv * cv))
    times = 10.0 * rng.lognormal(0.0, sigma, (commits, samples))
    if offset_cv:
        offset_sigma = math.sqrt(math.log1p(offset_cv * offset_cv))
        times *= rng.lognormal(0.0, offset_sigma, (commits, 1))
    times *= np.where(rng.random((commits, samples)) < outlier_rate, 2.0, 1.0)
    for at, factor in steps.items():
        times[at:] *= factor
    return times


def test_planted_step_is_named_with_its_ratio():
    rng = np.random.default_rng(1)
    misses = []
    for trial in range(30):
        at = int(rng.integers(3, 18))
        steps = detect_steps(COMMITS, history(rng, {at: 1.3}).tolist())
        slower = [s for s in steps if s.direction == "slower"]
        if len(steps) != 1 or slower[0].index != at:
            misses.append((at, steps))
            continue
        step = slower[0]
        assert (step.before, step.after) == (COMMITS[at - 1], COMMITS[at])
        assert step.ratio == pytest.approx(1.3, rel=0.05)
        assert 0.0 <= step.p_value < 0.01
    assert len(misses) <= 1, misses


def test_pure_noise_is_not_flagged_even_with_outliers():
    rng = np.random.default_rng(2)
    flagged = sum(
        bool(detect_steps(COMMITS, history(rng, {}, cv=cv, outlier_rate=rate).tolist()))
        for cv, rate in [(0.02, 0.0), (0.10, 0.0), (0.05, 0.05)] for _ in range(150)
    )
    # alpha = 0.01 over 450 histories: 4.5 expected at worst; 12 or more has probability < 0.1%.
    assert flagged < 12


def test_commit_offsets_do_not_make_noise_look_like_steps():
    rng = np.random.default_rng(3)
    flagged = sum(bool(detect_steps(COMMITS, history(rng, {}, cv=0.02, offset_cv=0.05).tolist()))
                  for _ in range(200))
    assert flagged < 8


def test_step_up_then_back_down_gives_both_directions():
    rng = np.random.default_rng(4)
    steps = detect_steps(COMMITS, history(rng, {6: 1.5, 14: 1 / 1.5}, cv=0.03).tolist())
    assert [(s.index, s.direction) for s in steps] == [(6, "slower"), (14, "faster")]
    assert steps[0].ratio == pytest.approx(1.5, rel=0.05)
    assert steps[1].ratio == pytest.approx(1 / 1.5, rel=0.05)


def test_newest_commit_regression_is_found():
    rng = np.random.default_rng(5)
    steps = detect_steps(COMMITS, history(rng, {19: 1.3}).tolist())
    assert [(s.index, s.direction) for s in steps] == [(19, "slower")]


def test_missing_commits_are_skipped_and_the_step_spans_them():
    rng = np.random.default_rng(6)
    samples: list = history(rng, {10: 1.5}).tolist()
    samples[9], samples[10] = None, []
    steps = detect_steps(COMMITS, samples)
    assert [(s.index, s.before, s.after) for s in steps] == [(11, "c08", "c11")]


def test_one_sample_per_commit_and_mixed_counts():
    rng = np.random.default_rng(7)
    single = history(rng, {12: 1.5}, cv=0.02, samples=1).tolist()
    assert [s.index for s in detect_steps(COMMITS, single)] == [12]
    mixed = history(rng, {12: 1.3}).tolist()
    mixed[3], mixed[12] = mixed[3][:1], mixed[12][:1]
    assert [s.index for s in detect_steps(COMMITS, mixed)] == [12]


def test_identical_repeats_step_and_flat():
    flat = [[100.0] * 3 for _ in COMMITS]
    assert detect_steps(COMMITS, flat) == []
    stepped = [[100.0] * 3] * 12 + [[150.0] * 3] * 8
    [step] = detect_steps(COMMITS, stepped)
    assert step.index == 12 and step.ratio == pytest.approx(1.5)


def test_short_history_step_is_not_taken_for_a_trend():
    # 8 commits, one sample each, 2 % noise: a 1.3x step is far beyond the noise wherever it lands,
    # and a straight line through it must not explain it away.
    rng = np.random.default_rng(11)
    commits = COMMITS[:8]
    misses = []
    for trial in range(10):
        for at in (3, 4, 5):
            times = history(rng, {at: 1.3}, cv=0.02, samples=1, commits=8).tolist()
            found = [(s.index, s.direction) for s in detect_steps(commits, times)]
            if len(found) != 1 or found[0][1] != "slower" or abs(found[0][0] - at) > 1:
                misses.append((at, times))
    assert misses == []


def test_two_steps_in_a_short_history_are_not_taken_for_a_trend():
    # 8 commits climbing in two clear stairs (1.2x at commit 3, then 1.5x at commit 5; 1 % noise):
    # two steps fit the levels to their noise, a straight line does not. The trend may win only
    # when its misfit is within what its slope is charged of the steps' misfit plus what the
    # extra boundary is charged, both in the misfit's units.
    wiggle = [1.0, 1.01, 0.99, 1.0, 1.01, 0.99, 1.0, 1.01]
    levels = [1.0] * 3 + [1.2] * 2 + [1.8] * 3
    samples = [[10.0 * level * w * f for f in (1.0, 1.01, 0.99)] for level, w in zip(levels, wiggle)]
    steps = detect_steps(COMMITS[:8], samples)
    assert [(s.index, s.direction) for s in steps] == [(3, "slower"), (5, "slower")]
    assert [s.ratio for s in steps] == pytest.approx([1.2, 1.5], rel=0.02)


def test_a_commit_with_two_slow_samples_of_three_keeps_its_level():
    # Outliers are slow: the level of [slow, slow, normal] is the normal sample's, so commits
    # whose majority was disturbed (the first two among them, where the outlier filter sees
    # fewer neighbours) make no step.
    rng = np.random.default_rng(12)
    for trial in range(10):
        times = history(rng, {}, cv=0.03, samples=3)
        for i in [0, 1, *rng.choice(np.arange(2, 20), size=3, replace=False)]:
            times[i, :2] *= 3.0
        assert detect_steps(COMMITS, times.tolist()) == [], (trial, times.round(1).tolist())


def test_two_slow_commits_among_the_first_three_make_no_step():
    # Commits 0 and 2 slow (every sample 3x: a run hit by load), commit 1 between them normal: the
    # edge's median is then a slow commit's level, and the normal commit 1 must not be the one left
    # out. No step at either edge (at the newest edge with 2 samples, which a regression in the
    # newest commit alone needs 3 agreeing samples to outweigh).
    rng = np.random.default_rng(13)
    for trial in range(10):
        times = history(rng, {}, cv=0.03, samples=3, offset_cv=0.02)
        times[[0, 2]] *= 3.0
        assert detect_steps(COMMITS, times.tolist()) == [], (trial, times.round(1).tolist())
        newest = times[::-1].tolist()
        newest[19] = newest[19][:2]
        assert detect_steps(COMMITS, newest) == [], (trial, newest)


def test_a_step_next_to_an_outlier_at_the_edge_is_kept():
    # Commit 1 slow (every sample 3x) and a 1.3x step at commit 3: the dropped commit 1 agrees
    # with no commit kept, so commit 0 stays (the old level) and the step stays at commit 3.
    rng = np.random.default_rng(14)
    for trial in range(10):
        times = history(rng, {3: 1.3}, cv=0.03, samples=3, offset_cv=0.01)
        times[1] *= 3.0
        assert [(s.index, s.direction) for s in detect_steps(COMMITS, times.tolist())] == [(3, "slower")], trial


def test_too_little_data_gives_nothing():
    assert detect_steps([], []) == []
    assert detect_steps(["a", "b"], [[1.0, 1.1], None]) == []


def test_min_ratio_drops_small_steps():
    rng = np.random.default_rng(8)
    times = history(rng, {12: 1.1}, cv=0.01).tolist()
    assert [s.index for s in detect_steps(COMMITS, times)] == [12]
    assert detect_steps(COMMITS, times, min_ratio=1.2) == []


@pytest.mark.parametrize(
    "commits, samples, kwargs, message",
    [
        (["a"], [[1.0], [2.0]], {}, "1 commits but 2"),
        (["a", "b"], [[1.0], [float("nan")]], {}, "commit #1"),
        (["a", "b"], [[1.0], [-2.0]], {}, "commit #1"),
        (["a", "b"], [[1.0], ["x"]], {}, "lists of numbers"),
        (["a", "b"], [[1.0], [2.0]], {"alpha": 1.5}, "alpha"),
        (["a", "b"], [[1.0], [2.0]], {"min_ratio": 0.9}, "min_ratio"),
    ],
)
def test_bad_input_is_named(commits, samples, kwargs, message):
    with pytest.raises(ValueError, match=message):
        detect_steps(commits, samples, **kwargs)


def test_asv_steps_agrees_on_a_big_step():
    rng = np.random.default_rng(9)
    times = history(rng, {12: 2.0}, cv=0.02)
    ours = detect_steps(COMMITS, times.tolist())
    theirs = asv_steps(COMMITS, np.median(times, axis=1).tolist())
    assert [(s.index, s.direction) for s in ours] == [(12, "slower")]
    assert [(s.index, s.direction) for s in theirs] == [(12, "slower")]
    assert isinstance(theirs[0], Step) and theirs[0].p_value is None
    assert theirs[0].ratio == pytest.approx(2.0, rel=0.05)


def test_asv_steps_reports_speedups_and_missing_values():
    rng = np.random.default_rng(10)
    values = np.median(history(rng, {12: 0.5}, cv=0.02), axis=1).tolist()
    values[5] = None
    [step] = asv_steps(COMMITS, values)
    assert (step.index, step.direction, step.before) == (12, "faster", "c11")
    assert step.ratio == pytest.approx(0.5, rel=0.05)


def test_running_the_library_as_a_module_prints_its_usage():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "tools.lib.detect"], capture_output=True, text=True, cwd=root)
    assert done.returncode != 0
    assert done.stderr.startswith("usage:") and "python -m tools.report" in done.stderr
