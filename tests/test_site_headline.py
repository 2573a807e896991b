"""tools.lib.headline: the fastest dense baseline, the headline shape and the ratio history, on
result files whose times are planted here."""
import json
import shutil
from pathlib import Path

import pytest

from tools.lib import headline as hl
from tools.lib.errors import ToolError
from tools.lib.peaks import peak_tflops

REAL = Path(__file__).resolve().parents[1] / "results" / "h100-80gb-hbm3x1"


def write_run(machine_dir: Path, commit: str, date: int, forward: dict[tuple[str, str], float],
              sdpa: dict[tuple[str, str], float]) -> None:
    """One asv result file: forward seconds {(implementation, seq_len): s} at batch 1, 12 heads,
    head_dim 64, bf16, not causal; SDPA seconds {(backend, seq_len): s} at bf16, not causal."""
    data = json.loads(next(p for p in REAL.glob("*.json") if p.name != "machine.json").read_text())
    names = sorted({n for n, _ in forward})
    seq_lens = sorted({s for _, s in forward} | {s for _, s in sdpa}, key=int)
    backends = sorted({b for b, _ in sdpa})
    width = len(data["result_columns"])

    def entry(result, params):
        return [result, params] + [None] * (width - 2)

    data["results"] = {hl.FORWARD: entry(
        [forward.get((n, s)) for n in names for s in seq_lens],
        [[repr(n) for n in names], seq_lens, ["1"], ["12"], ["64"], ["'bfloat16'"], ["False"]])}
    if sdpa:
        data["results"][hl.SDPA] = entry([sdpa.get((b, s)) for b in backends for s in seq_lens],
                                         [[repr(b) for b in backends], seq_lens, ["'bfloat16'"], ["False"]])
    data["commit_hash"], data["date"] = commit, date
    (machine_dir / f"{commit[:8]}-env.json").write_text(json.dumps(data))


@pytest.fixture
def machine_dir(tmp_path):
    folder = tmp_path / "gpu"
    folder.mkdir()
    shutil.copy(REAL / "machine.json", folder / "machine.json")
    shutil.copy(REAL.parent / "benchmarks.json", tmp_path / "benchmarks.json")
    return folder


def test_the_baseline_is_the_fastest_dense_kernel_and_math_counts_only_on_a_cpu(machine_dir):
    write_run(machine_dir, "a" * 40, 1, {("DenseAttention", "4096"): 0.008, ("Improved", "4096"): 0.001},
              {("flash", "4096"): 0.005, ("cudnn", "4096"): 0.006, ("math", "4096"): 0.002})
    gpu = hl.load_machine(machine_dir.parent, "gpu")
    run, shape, baseline, rows = hl.headline_rows(gpu)
    assert (shape.seq_len, shape.dtype, shape.causal) == ("4096", "'bfloat16'", "False")
    assert baseline.name == "flash SDPA" and baseline.time.value == 0.005  # math SDPA is no GPU baseline
    assert [(r.implementation, r.ratio) for r in rows] == [("Improved", pytest.approx(5.0)),
                                                          ("DenseAttention", pytest.approx(0.625))]
    cpu = hl.MachineResults("cpu", {"cpu": "x"}, gpu.runs)
    assert hl.fastest_dense(run, shape, cpu.is_gpu).name == "math SDPA"


def test_dense_attention_itself_is_a_baseline_when_no_sdpa_backend_was_measured(machine_dir):
    write_run(machine_dir, "b" * 40, 1, {("DenseAttention", "2048"): 0.004, ("Improved", "2048"): 0.002,
                                         ("Improved", "1024"): 0.001}, {})
    run, shape, baseline, rows = hl.headline_rows(hl.load_machine(machine_dir.parent, "gpu"))
    assert shape.seq_len == "2048"  # the longest forward measured
    assert baseline.name == "DenseAttention (auto SDPA)" and rows[0].ratio == pytest.approx(2.0)


def test_history_is_per_commit_against_that_commits_fastest_dense(machine_dir):
    write_run(machine_dir, "c" * 40, 1, {("DenseAttention", "4096"): 0.008, ("Improved", "4096"): 0.002},
              {("flash", "4096"): 0.004})
    write_run(machine_dir, "d" * 40, 2, {("DenseAttention", "4096"): 0.003, ("Improved", "4096"): 0.001},
              {("flash", "4096"): 0.006})
    machine = hl.load_machine(machine_dir.parent, "gpu")
    _, shape, _, _ = hl.headline_rows(machine)
    history = hl.ratio_history(machine, shape)
    assert [(p.commit[0], p.baseline.name, p.ratio) for p in history["Improved"]] == [
        ("c", "flash SDPA", pytest.approx(2.0)), ("d", "DenseAttention (auto SDPA)", pytest.approx(3.0))]
    # asv's git order, where given, wins over the stored dates
    reordered = hl.load_machine(machine_dir.parent, "gpu", order={"d" * 40: 0, "c" * 40: 1})
    assert [r.commit_hash[0] for r in reordered.runs] == ["d", "c"]


def test_qkvo_is_four_tensors_of_the_shape():
    shape = hl.Shape("32768", "1", "12", "64", "'bfloat16'", "False")
    assert hl.qkvo_mib(shape) == 4 * 32768 * 12 * 64 * 2 / 2 ** 20


def test_an_unreadable_machine_file_is_a_one_line_error(machine_dir):
    (machine_dir / "machine.json").write_text("[1, 2")
    with pytest.raises(ToolError, match="machine.json"):
        hl.load_machine(machine_dir.parent, "gpu")
    with pytest.raises(ToolError, match="no results for machine 'nope'"):
        hl.load_machine(machine_dir.parent, "nope")


def test_peaks_only_for_known_gpus_and_16_bit_dtypes():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == peak_tflops("NVIDIA H200", "'float16'")
    assert peak_tflops("NVIDIA H100 PCIe", "bfloat16") < peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16")
    assert peak_tflops("NVIDIA H100 80GB HBM3", "float32") is None
    assert peak_tflops(None, "bfloat16") is None and peak_tflops("Some New GPU", "bfloat16") is None


def test_a_machine_without_any_dense_kernel_gets_a_page_without_ratios(machine_dir):
    from tools.lib.landing import render_landing

    write_run(machine_dir, "e" * 40, 1, {("Improved", "4096"): 0.002, ("Ring", "4096"): 0.004}, {})
    page = render_landing(machine_dir.parent)
    assert "vs fastest dense (none measured)" in page and "No speed-up history" in page
    assert "fastest: Improved, 2.000 ms, no dense kernel measured at this shape" in page
    assert page.count('data-kind="ratio"') == 0 and page.count('class="point"') == 2  # the two times
