"""tools.lib.simulate / tools.lib.evaluate / tools.simulate: histories carry the truth they were
built with, scoring follows its definition on hand-made cases, the table is reproducible and the
command writes it between the markers only."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from tools import simulate as command
from tools.lib import evaluate
from tools.lib.errors import ToolError
from tools.lib.simulate import Scenario, null_of, plant_step, simulate


def test_noise_free_history_is_the_planted_step():
    scenario = Scenario("flat", offset_cv=0.0, within_cv=0.0, step=2.0, commits=10, first_step=4, last_step=4)
    history = simulate(scenario, np.random.default_rng(0))
    assert history.truth == [(4, "slower")]
    assert [s[0] for s in history.samples] == pytest.approx([10.0] * 4 + [20.0] * 6)
    assert all(1 <= len(s) <= 3 for s in history.samples)


def test_excursion_drift_and_missing_commits():
    rng = np.random.default_rng(1)
    up_down = simulate(Scenario("x", 0.0, 0.0, step=1.5, back_after=3, commits=12, first_step=4, last_step=4), rng)
    assert up_down.truth == [(4, "slower"), (7, "faster")]
    assert [s[0] for s in up_down.samples] == pytest.approx([10] * 4 + [15] * 3 + [10] * 5)
    drift = simulate(Scenario("d", 0.0, 0.0, drift=0.1, commits=11), rng)
    assert drift.truth == [] and drift.samples[-1][0] == pytest.approx(11.0)
    gaps = simulate(Scenario("m", missing=0.5, commits=400), rng)
    assert 150 < sum(s is None for s in gaps.samples) < 250
    assert null_of(Scenario("s", step=1.3)).planted is False


def test_planting_in_a_real_series_keeps_a_margin():
    values = [1.0, None, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    for seed in range(20):
        history = plant_step(values, 1.3, np.random.default_rng(seed))
        [(at, direction)] = history.truth
        assert direction == "slower" and at in (4, 5)  # 3 measured commits on each side
        assert history.samples[1] is None and history.samples[-1] == [1.3]
    with pytest.raises(ValueError, match="needs 6"):
        plant_step([1.0] * 5, 1.3, np.random.default_rng(0))


def test_a_real_series_counts_a_plant_only_above_its_noise_floor():
    rng = np.random.default_rng(5)
    quiet = (10.0 * np.exp(rng.normal(0.0, 0.01, 20))).tolist()  # 1 % commit-to-commit
    loud = (10.0 * np.exp(rng.normal(0.0, 0.30, 20))).tolist()  # 30 %: a 1.3x step is noise
    assert evaluate.series_noise_sd(quiet) < 0.02 < 0.2 < evaluate.series_noise_sd(loud)
    assert evaluate.within_reach(quiet, 10, 1.3) and not evaluate.within_reach(loud, 10, 1.3)
    every, reachable = evaluate.evaluate_real("r", [("quiet", quiet), ("loud", loud)], 5, 0, None, None)
    assert (every.extra["plants"], every.extra["of"], reachable.extra["of"]) == (10, 10, 10)
    assert reachable.extra["plants"] == 5 and reachable.ours.trials == 5
    assert reachable.ours.found == 5  # a 1.3x step over 1 % noise is always found


@pytest.mark.parametrize("reported, truth, expected", [
    ([(5, "slower")], [(5, "slower")], (1, 1, 0)),
    ([(6, "slower")], [(5, "slower")], (1, 0, 0)),
    ([(7, "slower")], [(5, "slower")], (0, 0, 1)),
    ([(5, "faster")], [(5, "slower")], (0, 0, 0)),
    ([(5, "slower"), (12, "faster")], [(5, "slower"), (11, "faster")], (1, 0, 0)),
    ([(5, "slower")], [(5, "slower"), (11, "faster")], (0, 0, 0)),
    ([(3, "slower")], [], (0, 0, 1)),
    ([], [], (0, 0, 0)),
])
def test_score_definitions(reported, truth, expected):
    score = evaluate.Score()
    score.add(reported, truth)
    assert (score.found, score.exact, score.false) == expected


def test_otava_p_is_matched_to_our_false_flag_rate():
    assert evaluate._pick_p(3, [0, 1, 3, 5, 8, 9]) == 2
    assert evaluate._pick_p(0, [1, 2, 3, 4, 5, 6]) == 0  # none low enough: the strictest


def test_table_without_otava_is_reproducible():
    grid = (Scenario("easy 2x", offset_cv=0.01, step=2.0), Scenario("hard none", offset_cv=0.05))
    rows, meta = evaluate.evaluate(12, 3, None, None, grid=grid)
    again, _ = evaluate.evaluate(12, 3, None, None, grid=grid)
    assert [r.name for r in rows] == ["easy 2x (no step)", "easy 2x", "hard none"]
    assert [(r.ours.found, r.ours.false) for r in rows] == [(r.ours.found, r.ours.false) for r in again]
    easy = rows[1]
    assert easy.ours.found == 12 and easy.otava is None
    table = evaluate.markdown_table(rows, meta)
    assert "Otava (unavailable" in table and "| easy 2x | 100.0 / " in table


def test_write_replaces_only_the_marked_block(tmp_path):
    doc = tmp_path / "detection.md"
    doc.write_text("intro\n<!-- evaluation:begin -->\nold\n<!-- evaluation:end -->\nrest\n")
    text = command.replace_between_markers(doc.read_text(), "new table")
    assert text == "intro\n<!-- evaluation:begin -->\nnew table\n<!-- evaluation:end -->\nrest\n"
    with pytest.raises(ToolError, match="evaluation:begin"):
        command.replace_between_markers("no markers", "x")


def test_bad_sizes_are_usage_errors():
    with pytest.raises(SystemExit) as exit_info:
        command.main(["--trials", "0"])
    assert exit_info.value.code == 2


@pytest.mark.skipif(evaluate.otava_available(evaluate.DEFAULT_OTAVA_PYTHON) is None,
                    reason="Otava is an optional dev dependency (.venv-otava)")
def test_otava_bridge_finds_an_obvious_step():
    history = plant_step([10.0, 10.1, 9.9, 10.0, 10.05, 9.95, 10.0, 10.1, 9.9, 10.0], 2.0, np.random.default_rng(4))
    [[found]] = evaluate._otava(evaluate.DEFAULT_OTAVA_PYTHON, [history], (0.01,))
    assert found == history.truth
