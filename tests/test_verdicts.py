"""tools.lib.verdicts: candidates from the detector, confirmations from the file tools.bisect
writes, direction per unit, and "not enough data" for series that cannot be judged; on asv
results written here with a planted step (the truth known by construction)."""
from __future__ import annotations

import json

import pytest
from test_tools_report import N_COMMITS, STEP_AT, _fake_commits, _hourly, write_results

from tools.lib.errors import ToolError
from tools.lib.verdicts import (Confirmation, confirmations_path, load_confirmations, record_confirmation,
                                verdicts_for)


@pytest.fixture()
def stepped(tmp_path):
    commits = _fake_commits(N_COMMITS)
    write_results(tmp_path, commits, _hourly(N_COMMITS), lambda i: 1.5 if i >= STEP_AT else 1.0)
    return tmp_path, commits


def test_a_planted_step_is_a_candidate_until_confirmed(stepped):
    results, commits = stepped
    verdicts = verdicts_for(str(results), "m1")
    assert {(v.params, v.commit, v.parent, v.status) for v in verdicts} == {
        (("1024",), commits[STEP_AT], commits[STEP_AT - 1], "candidate"),
        (("4096",), commits[STEP_AT], commits[STEP_AT - 1], "candidate")}
    assert all(v.factor == pytest.approx(1.5, rel=0.05) and v.p_value < 0.01 for v in verdicts)
    record_confirmation(str(results), "m1", Confirmation("suite.time_f", ("1024",), commits[STEP_AT],
                                                         commits[STEP_AT - 1], 1.48, 0.001, True, 8))
    record_confirmation(str(results), "m1", Confirmation("suite.time_f", ("4096",), commits[STEP_AT],
                                                         commits[STEP_AT - 1], 1.01, 0.4, False, 8))
    after = {v.params: v for v in verdicts_for(str(results), "m1")}
    assert after[("1024",)].status == "confirmed" and after[("1024",)].p_value == 0.001
    assert ("4096",) not in after  # re-measured: within noise, not a verdict
    assert len(load_confirmations(str(results), "m1")) == 2
    assert verdicts_for(str(results), "other-machine") == []


def test_confirmations_folder_is_not_a_machine_and_a_bad_file_is_named(stepped):
    results, _ = stepped
    path = confirmations_path(str(results), "m1")
    (results / "confirmations").mkdir()
    (results / "confirmations" / "m1.json").write_text("{not json")
    with pytest.raises(ToolError, match="not a confirmations file"):
        verdicts_for(str(results), "m1")
    (results / "confirmations" / "m1.json").write_text(json.dumps({"version": 1, "confirmations": []}))
    assert path.endswith("confirmations/m1.json") and len(verdicts_for(str(results), "m1")) == 2


def test_a_speedup_is_no_verdict_and_short_series_have_not_enough_data(tmp_path):
    commits = _fake_commits(N_COMMITS)
    write_results(tmp_path, commits, _hourly(N_COMMITS), lambda i: 0.5 if i >= STEP_AT else 1.0)  # faster
    assert verdicts_for(str(tmp_path)) == []  # a speed-up of a time is no regression
    short = tmp_path / "short"
    write_results(short, commits[:2], _hourly(2), lambda i: 1.0)
    assert {v.status for v in verdicts_for(str(short))} == {"not enough data"}


def test_the_site_regressions_page_shows_only_confirmed_verdicts(tmp_path):
    from tools.lib.site_regressions import show_verdicts
    from tools.lib.verdicts import Verdict

    html = tmp_path / "html"
    graph = "graphs/machine-m1/suite.time_f.json"
    (html / "graphs" / "machine-m1").mkdir(parents=True)
    (html / graph).write_text(json.dumps([[1, [1.0, 2.0]], [2, [1.0, 2.0]], [3, [1.5, 2.0]]]))
    (html / "index.json").write_text(json.dumps({"revision_to_hash": {"1": "a" * 40, "2": "b" * 40, "3": "c" * 40}}))
    asv_entries = [["suite.time_f(1024)", graph, {}, 0, 1.5, 1.0, [[2, 3, 1.0, 1.5]]],
                   ["suite.time_f(4096)", graph, {}, 1, 2.0, 1.0, [[1, 2, 1.0, 2.0]]]]  # noise asv listed
    (html / "regressions.json").write_text(json.dumps({"regressions": asv_entries}))
    benchmarks = tmp_path / "benchmarks.json"
    benchmarks.write_text(json.dumps({"suite.time_f": {"params": [["1024", "4096"]], "param_names": ["n"]}}))
    verdicts = [Verdict("m1", "suite.time_f", ("1024",), "c" * 40, "b" * 40, 1.5, 0.001, "confirmed", 0.04),
                Verdict("m1", "suite.time_f", ("4096",), "b" * 40, "a" * 40, 2.0, 0.001, "candidate", None)]
    assert show_verdicts(html, verdicts, benchmarks) == (1, 1)
    [entry] = json.loads((html / "regressions.json").read_text())["regressions"]
    assert entry[0] == "suite.time_f(1024)" and entry[6] == [[2, 3, 1.0, 1.5]]
