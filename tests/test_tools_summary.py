"""tools.summary tabulates asv result files: ms, speed-up vs dense, and errors for bad input."""
import json
import shutil
from pathlib import Path

import pytest

from tools.lib.errors import ToolError
from tools.summary import FORWARD, SDPA, summary

REAL = Path(__file__).resolve().parents[1] / "results" / "h100-80gb-hbm3x1"


def one_commit_results(tmp_path: Path, times_ms: dict[str, float]) -> Path:
    """A results dir holding one asv result file whose 32K forward times are ``times_ms``."""
    machine = tmp_path / "results" / "gpu"
    machine.mkdir(parents=True)
    shutil.copy(REAL / "machine.json", machine / "machine.json")
    data = json.loads(next(p for p in REAL.glob("*.json") if p.name != "machine.json").read_text())
    data["results"] = {FORWARD: data["results"][FORWARD]}
    entry = data["results"][FORWARD]
    names, seq_lens = entry[1][0], entry[1][1]
    values = []
    for name in names:  # product order: implementation, seq_len, batch, heads, head_dim, dtype, causal
        for seq_len in seq_lens:
            for _causal in entry[1][6]:
                ms = times_ms.get(name.strip("'")) if seq_len == "32768" else None
                values.append(None if ms is None else ms / 1e3)
    entry[0] = values
    for column in range(2, len(entry)):
        entry[column] = None if column > 4 else entry[column]
    (machine / "abcdef12-env.json").write_text(json.dumps(data))
    return tmp_path / "results"


def test_speed_up_is_dense_time_over_implementation_time(tmp_path):
    results = one_commit_results(tmp_path, {"DenseAttention": 8.0, "ImprovedDilatedAttention": 0.5})
    text = summary(results, "gpu")
    assert "| ImprovedDilatedAttention | 0.500 | 16.0x |" in text
    assert "| DenseAttention | 8.000 | 1.0x |" in text
    assert "4096 tokens" not in text  # no values there: no table


def add_flash_forward(results: Path, seconds_at_32k: float) -> None:
    """Give the one result file a bench_sdpa entry: flash SDPA forward at 32K, not causal."""
    path = next((results / "gpu").glob("*-env.json"))
    data = json.loads(path.read_text())
    entry = list(data["results"][FORWARD])
    entry[0] = [seconds_at_32k, None]
    entry[1] = [["'flash'"], ["32768"], ["'bfloat16'"], ["False", "True"]]
    data["results"][SDPA] = entry
    path.write_text(json.dumps(data))


def test_targets_are_speed_ups_against_the_fastest_dense_kernel(tmp_path):
    results = one_commit_results(tmp_path, {"DenseAttention": 8.0, "ImprovedDilatedAttention": 0.5,
                                            "BlockSparseAttention": 1.0})
    add_flash_forward(results, 0.010)
    text = summary(results, "gpu")
    # DenseAttention (torch's auto choice, 8 ms) is faster than flash (10 ms): it is the baseline.
    assert ("| Improved forward at 32K >= 27x the fastest dense kernel | 0.500 ms vs DenseAttention "
            "(auto SDPA) 8.000 ms = 16.0x (vs flash 20.0x) | no |") in text
    assert ("| BlockSparse (90%) forward at 32K >= 9x the fastest dense kernel | 1.000 ms vs "
            "DenseAttention (auto SDPA) 8.000 ms = 8.0x (vs flash 10.0x) | no |") in text
    assert "Fastest dense kernel here: DenseAttention (auto SDPA), 8.000 ms." in text
    assert "| ImprovedDilatedAttention | 0.500 | 16.0x | 20.0x |" in text  # vs fastest dense, vs flash
    # History rows: Dense, Improved, BlockSparse, then flash from bench_sdpa.
    assert " | 8.000 | 0.500 | 1.000 | 10.000 |\n" in text


def test_efficiency_target_divides_the_speed_up_by_the_pairs_ratio(tmp_path):
    from tools.summary import pairs_ratio

    # At 32K the dilated pattern computes 1/27.4 of dense's pairs (segments 2048..8192, rates 1, 2,
    # 4, one third of the heads each): a 27.4x speed-up is equal effective TFLOP/s.
    assert pairs_ratio(32768, False) == pytest.approx(32768 / ((2048 + 4096 / 4 + 8192 / 16) / 3))
    results = one_commit_results(tmp_path, {"DenseAttention": 27.0, "ImprovedDilatedAttention": 1.0})
    text = summary(results, "gpu")
    assert ("lowest 98% of DenseAttention (auto SDPA)'s effective TFLOP/s (27.0x it at 32768, "
            "causal=False; 2 shapes) | no |") in text


def test_a_faster_sdpa_backend_becomes_the_baseline(tmp_path):
    results = one_commit_results(tmp_path, {"DenseAttention": 8.0, "ImprovedDilatedAttention": 0.5})
    add_flash_forward(results, 0.004)  # flash faster than torch's auto choice here
    text = summary(results, "gpu")
    assert "Fastest dense kernel here: flash SDPA, 4.000 ms." in text
    assert "| ImprovedDilatedAttention | 0.500 | 8.0x | 8.0x |" in text


def test_missing_machine_and_commit_are_one_line_errors(tmp_path):
    results = one_commit_results(tmp_path, {"DenseAttention": 1.0})
    with pytest.raises(ToolError, match="no results for machine 'nope'"):
        summary(results, "nope")
    with pytest.raises(ToolError, match="no results for commit '0000'"):
        summary(results, "gpu", "0000")
