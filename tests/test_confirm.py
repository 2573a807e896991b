"""tools.lib.confirm: the paired test on interleaved rounds, against cases whose answer is known
by construction (a shared slow spell that pairing must cancel, a real slowdown, throughput)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tools.lib.confirm import judge, paired_test, round_medians
from tools.lib.errors import ToolError


def rounds_of(rng, level, spells, repeat=3, within=0.01):
    """Samples of len(spells) rounds: round r runs at level * spells[r] (the machine's state then)."""
    return [level * s * math.exp(rng.normal(0, within)) for s in spells for _ in range(repeat)]


def test_round_medians_take_the_appended_rounds():
    older = [100.0] * 4
    assert round_medians(older + [1.0, 2.0, 3.0, 5.0, 5.0, 9.0], 3, 2) == [2.0, 5.0]
    assert round_medians([1.0, 2.0], 3, 2) is None


def test_pairing_cancels_a_slow_spell_that_pooling_would_not():
    rng = np.random.default_rng(0)
    spells = np.exp(rng.normal(0, 0.2, 8))  # each round's machine state, shared by both commits
    parent, commit = rounds_of(rng, 10.0, spells), rounds_of(rng, 10.5, spells)  # a real 5 % slowdown
    verdict = judge({"b": parent}, {"b": commit}, 3, 8, alpha=0.01, min_factor=1.03)
    assert verdict.confirmed and verdict.factor == pytest.approx(1.05, rel=0.02)
    from scipy.stats import mannwhitneyu  # unpaired: the spells swamp the 5 %
    assert mannwhitneyu(round_medians(commit, 3, 8), round_medians(parent, 3, 8), alternative="greater").pvalue > 0.05


def test_no_change_is_not_confirmed_in_most_runs():
    rng = np.random.default_rng(1)
    confirmed = 0
    for _ in range(200):
        spells = np.exp(rng.normal(0, 0.1, 8))
        verdict = judge({"b": rounds_of(rng, 10.0, spells)}, {"b": rounds_of(rng, 10.0, spells)}, 3, 8, 0.01, 1.0)
        confirmed += verdict.confirmed
    assert confirmed <= 6  # alpha 1 % of 200: 2 expected


def test_throughput_drop_is_the_regression():
    parent, commit = [100.0, 101.0, 99.0, 100.0], [80.0, 81.0, 79.0, 80.5]
    assert paired_test(parent, commit, higher_is_better=True)[0] == pytest.approx(1.25, rel=0.01)
    assert paired_test(parent, commit, higher_is_better=True)[1] < 0.01
    assert paired_test(parent, commit)[1] > 0.5  # as a time, it got faster


def test_identical_rounds_and_missing_samples():
    assert paired_test([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == (1.0, 1.0)
    with pytest.raises(ToolError, match="nothing to test"):
        judge({"b": [1.0]}, {"b": [1.0, 2.0]}, 2, 3, 0.01, 1.0)
