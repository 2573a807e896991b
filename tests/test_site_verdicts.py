"""The landing page's verdicts and noise floors: shown as the detector and the noise files give
them, said to be absent only when they are."""
import html
import json
import math
import shutil
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from tools.lib.landing import render_landing

REAL = Path(__file__).resolve().parents[1] / "results"
BENCH = "bench_time.TimeForward.time_forward"


@dataclass(frozen=True)
class FakeVerdict:
    machine: str
    benchmark: str
    params: tuple
    commit: str
    parent: str | None
    factor: float
    p_value: float | None
    status: str
    noise_floor: float | None


@dataclass(frozen=True)
class FakeFloor:
    within_cv: float
    between_cv: float
    mde: float
    stable: bool
    runs: int


@pytest.fixture
def results(tmp_path):
    """A results dir with the committed CPU machine's results and benchmark definitions."""
    shutil.copytree(REAL / "cpu-amd-epyc-2c", tmp_path / "cpu-amd-epyc-2c")
    shutil.copy(REAL / "benchmarks.json", tmp_path / "benchmarks.json")
    return tmp_path


def install(monkeypatch, name, **functions):
    module = types.ModuleType(name)
    for key, fn in functions.items():
        setattr(module, key, fn)
    monkeypatch.setitem(sys.modules, name, module)


def test_verdicts_and_noise_floors_are_shown_with_their_figures(results, monkeypatch):
    params = ("ImprovedDilatedAttention", "2048", "1", "4", "32", "float32", "False")
    verdicts = [FakeVerdict("cpu-amd-epyc-2c", BENCH, params, "b" * 40, "a" * 40, 1.37, 0.0004, "confirmed", 0.021),
                FakeVerdict("cpu-amd-epyc-2c", BENCH, params, "d" * 40, "c" * 40, 1.12, None, "candidate", None),
                FakeVerdict("cpu-amd-epyc-2c", BENCH, params, "e" * 40, "d" * 40, 1.5, 0.01, "fixed", None)]
    install(monkeypatch, "tools.lib.verdicts", verdicts_for=lambda results_dir, machine=None: verdicts)
    floors = {(BENCH, tuple(f"'{p}'" if p.isalpha() and p not in ("False", "True") else p for p in params)):
              FakeFloor(0.0123, 0.0456, 0.078, True, 3),
              (BENCH, ("'DenseAttention'",) + params[1:5] + ("'float32'", "False")):
              FakeFloor(0.5, 0.9, 1.736, False, 3),
              ("bench_sdpa.SdpaBackends.time_forward", ("'math'", "1024", "'float32'", "False")):
              FakeFloor(math.nan, 0.01, math.nan, False, 3)}
    install(monkeypatch, "tools.lib.noise", load_noise_floors=lambda results_dir, machine: floors)

    page = render_landing(results)

    assert "No verdicts yet" not in page and "No noise floor measured" not in page
    verdict_rows = page.split('<table class="verdicts">')[1].split("</table>")[0].split("<tr class=")[1:]
    assert [row.split('"')[1] for row in verdict_rows] == ["confirmed", "candidate"]  # fixed is no regression
    assert "1.37x" in verdict_rows[0] and "0.0004" in verdict_rows[0] and "2.1%" in verdict_rows[0]
    assert "<code>aaaaaaaa</code> → <code>bbbbbbbb</code>" in verdict_rows[0]
    assert "1.12x" in verdict_rows[1] and verdict_rows[1].count("—") == 2  # no p-value, no noise floor
    link = unquote(html.unescape(verdict_rows[0].split('href="')[1].split('"')[0]))
    assert link.startswith(f"index.html#{BENCH}?machine=cpu-amd-epyc-2c&")
    # asv's menus hold the values as benchmarks.json spells them: the quoted reprs
    for part in ("p-implementation='ImprovedDilatedAttention'", "p-dtype='float32'", "p-seq_len=2048",
                 "commits=aaaaaaaa-bbbbbbbb"):
        assert part in link, link
    table = page.split('<table class="headline">')[1].split("</table>")[0]
    improved = next(row for row in table.split("<tr>") if ">ImprovedDilatedAttention<" in row)
    assert '<td class="num noise-floor">±7.8%</td>' in improved  # the headline time's own noise floor
    dense = next(row for row in table.split("<tr>") if ">DenseAttention<" in row)
    assert '<td class="num noise-floor">±173.6% (unstable)</td>' in dense
    assert table.count('<td class="num noise-floor">—</td>') == table.count("<tr>") - 3  # header, Improved, Dense
    noise = page.split('<table class="noise">')[1]
    assert "1.23%" in noise and "4.56%" in noise and "7.8%" in noise
    assert "<td class=\"num\">—</td>" in noise  # a figure the noise file could not compute


def test_absent_detector_and_noise_files_say_so_and_an_empty_verdict_list_is_not_absent(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "tools.lib.verdicts", None)  # import fails: no detector
    monkeypatch.setitem(sys.modules, "tools.lib.noise", None)
    page = render_landing(results)
    assert "No verdicts yet" in page and "No noise floor measured on this machine" in page

    install(monkeypatch, "tools.lib.verdicts", verdicts_for=lambda results_dir, machine=None: [])
    install(monkeypatch, "tools.lib.noise", load_noise_floors=lambda results_dir, machine: {})
    page = render_landing(results)
    assert "No verdicts yet" not in page and "found no confirmed or candidate regression" in page
    assert "No noise floor measured on this machine" in page
    assert json.loads((results / "benchmarks.json").read_text())  # inputs untouched
