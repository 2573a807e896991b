"""tools.simulate: the table prints both detectors, is reproducible, and the CLI rejects bad sizes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tools import simulate


def table_rows(output: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in output.splitlines()
            if line.startswith("| ") and "---" not in line]


def test_table_has_both_detectors_for_every_model_and_step(capsys):
    simulate.main(["--trials", "4", "--seed", "1"])
    header, *rows = table_rows(capsys.readouterr().out)
    assert header == ["noise model", "step", "detect_steps found", "(+-1)", "detect_steps false",
                      "asv found", "(+-1)", "asv false"]
    assert len(rows) == len(simulate.NOISE_MODELS) * len(simulate.STEP_SIZES)
    assert {row[0] for row in rows} == set(simulate.NOISE_MODELS)
    # 2x at 2% noise: impossible to miss for either detector.
    [easy] = [row for row in rows if row[0] == "lognormal 2%" and row[1] == "2x"]
    assert easy[2] == "100.0%" and easy[5] == "100.0%"


def test_same_seed_same_table(capsys):
    simulate.main(["--trials", "2", "--seed", "5", "--asv-value", "first"])
    first = capsys.readouterr().out
    simulate.main(["--trials", "2", "--seed", "5", "--asv-value", "first"])
    assert capsys.readouterr().out == first


def test_simulated_step_lands_where_asked():
    import numpy as np

    times = simulate.simulate_history(np.random.default_rng(0), simulate.lognormal(0.0), 6, 3, 4, 2.0)
    assert times.tolist() == [[10.0] * 3] * 4 + [[20.0] * 3] * 2


def test_bad_step_position_is_refused(capsys):
    with pytest.raises(SystemExit) as refused:
        simulate.main(["--trials", "1", "--commits", "10", "--step-at", "10"])
    assert refused.value.code == 2 and "--step-at" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_entry_point_and_speed_mode():
    done = subprocess.run(
        [sys.executable, "-m", "tools.simulate", "--speed", "--speed-benchmarks", "20", "--speed-commits", "50"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert "20 benchmarks x 50 commits x 10 samples" in done.stdout
