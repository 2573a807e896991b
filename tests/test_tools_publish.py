"""tools.publish keeps other machines' benchmark definitions and parameter values for the site."""
import json

import pytest

from tools.lib.errors import ToolError
from tools.publish import build_site, merge_saved_definitions, swap_in


def definition(seq_lens, dtypes):
    return {"name": "bench_time.TimeForward.time_forward", "param_names": ["seq_len", "dtype"],
            "params": [seq_lens, dtypes], "type": "time", "unit": "seconds"}


def test_gpu_only_benchmarks_and_gpu_params_survive_a_cpu_run(tmp_path):
    cpu = {"bench_time.TimeForward.time_forward": definition(["1024", "2048"], ["'float32'"]),
           "version": 2}
    gpu = {"bench_time.TimeForward.time_forward": definition(["4096", "32768"], ["'bfloat16'"]),
           "bench_capacity.LargestFit.track_largest_seq_len": {"param_names": [], "params": []},
           "version": 2}
    (tmp_path / "benchmarks.json").write_text(json.dumps(cpu))
    (tmp_path / "benchmarks-gpu.saved").write_text(json.dumps(gpu))

    changed = merge_saved_definitions(tmp_path)

    merged = json.loads((tmp_path / "benchmarks.json").read_text())
    assert set(changed) == {"bench_time.TimeForward.time_forward",
                            "bench_capacity.LargestFit.track_largest_seq_len"}
    assert merged["bench_time.TimeForward.time_forward"]["params"] == [
        ["1024", "2048", "4096", "32768"], ["'bfloat16'", "'float32'"]]
    assert "bench_capacity.LargestFit.track_largest_seq_len" in merged
    # a second run has nothing left to add
    assert merge_saved_definitions(tmp_path) == []
    assert json.loads((tmp_path / "benchmarks-gpu.saved").read_text()) == gpu


def test_a_definition_from_other_benchmark_code_is_named_in_a_warning(tmp_path, capsys):
    cpu = {"bench_time.TimeForward.time_forward": {**definition(["1024"], ["'float32'"]), "version": "aaaa1111"},
           "version": 2}
    gpu = {"bench_time.TimeForward.time_forward": {**definition(["1024"], ["'float32'"]), "version": "bbbb2222"},
           "version": 2}
    (tmp_path / "benchmarks.json").write_text(json.dumps(cpu))
    (tmp_path / "benchmarks-gpu.saved").write_text(json.dumps(gpu))
    merge_saved_definitions(tmp_path)
    err = capsys.readouterr().err
    assert "bench_time.TimeForward.time_forward" in err and "bbbb2222" in err and "aaaa1111" in err


def test_missing_benchmarks_json_is_a_one_line_error(tmp_path):
    with pytest.raises(ToolError, match="benchmarks.json not found"):
        merge_saved_definitions(tmp_path)


def test_rises_of_higher_is_better_benchmarks_leave_the_regressions_page_and_feed(tmp_path):
    from tools.lib.site_regressions import drop_backwards_regressions

    html = tmp_path / "html"
    html.mkdir()
    benchmarks = {"bench_time.TimeForward.time_forward": {"unit": "seconds"},
                  "bench_capacity.LargestFit.track_largest_seq_len": {"unit": "tokens"}, "version": 2}
    (tmp_path / "benchmarks.json").write_text(json.dumps(benchmarks))
    entries = [["bench_time.TimeForward.time_forward('Dense', 4096)", "graphs/a.json", {}, 0, 2.0, 1.0, []],
               ["bench_capacity.LargestFit.track_largest_seq_len('Ring', 'bfloat16', False)", "graphs/b.json",
                {}, 0, 3.0, 1.0, []]]
    (html / "regressions.json").write_text(json.dumps({"regressions": entries}))
    atom = "http://www.w3.org/2005/Atom"
    feed = (f"<?xml version='1.0' encoding='utf-8'?><feed xmlns=\"{atom}\">"
            f"<entry><title>100.00% {entries[0][0]}</title></entry>"
            f"<entry><title>200.00% {entries[1][0]}</title></entry></feed>")
    (html / "regressions.xml").write_text(feed)

    assert drop_backwards_regressions(html, tmp_path / "benchmarks.json") == 1
    kept = json.loads((html / "regressions.json").read_text())["regressions"]
    assert [e[0] for e in kept] == [entries[0][0]]
    text = (html / "regressions.xml").read_text()
    assert "TimeForward" in text and "LargestFit" not in text
    assert drop_backwards_regressions(html, tmp_path / "benchmarks.json") == 0  # nothing left to drop


def published_site(tmp_path):
    """(results dir with one machine, an existing html/ whose every file a test can compare)."""
    results, html = tmp_path / "results", tmp_path / "html"
    (results / "gpu").mkdir(parents=True)
    (results / "benchmarks.json").write_text(json.dumps({"version": 2}))
    (results / "gpu" / "machine.json").write_text(json.dumps({"machine": "gpu", "version": 1}))
    (html / "graphs").mkdir(parents=True)
    (html / "index.html").write_text("<html>the site as published before</html>")
    (html / "graphs" / "a.json").write_text("[[1, 2.0]]")
    return results, html


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_unreadable_machine_file_leaves_the_published_site_untouched(tmp_path):
    results, html = published_site(tmp_path)
    before = snapshot(html)
    (results / "gpu" / "machine.json").write_text("{not json")
    with pytest.raises(ToolError, match=r"gpu/machine.json"):
        build_site(tmp_path / "asv.conf.json", results, html)
    assert snapshot(html) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["html", "results"]  # no half-built site left


def test_a_failing_step_leaves_the_published_site_untouched(tmp_path, monkeypatch):
    import tools.publish

    results, html = published_site(tmp_path)
    before = snapshot(html)
    written = []

    def asv_publish_fails(step, command):
        new = command[command.index("--html-dir") + 1]
        (tmp_path / new / "index.html").write_text("half a site")  # what a step left when it failed
        written.append(new)
        raise ToolError(f"{step} failed (exit status 1); the published site is unchanged")

    monkeypatch.setattr(tools.publish, "_run", asv_publish_fails)
    with pytest.raises(ToolError, match="asv publish failed"):
        build_site(tmp_path / "asv.conf.json", results, html)
    assert written and snapshot(html) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["html", "results"]


def test_swap_in_replaces_the_whole_site(tmp_path):
    _, html = published_site(tmp_path)
    new = tmp_path / ".html-new"
    new.mkdir()
    (new / "index.html").write_text("new site")
    swap_in(new, html)
    assert snapshot(html) == {html.joinpath("index.html").relative_to(html): b"new site"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["html", "results"]


def test_noise_and_confirmation_folders_are_not_machines(tmp_path):
    from tools.lib.series import machine_dirs

    results, _ = published_site(tmp_path)
    for folder in ("noise", "confirmations"):
        (results / folder).mkdir()
        (results / folder / "gpu.json").write_text("{}")
    assert [p.rsplit("/", 1)[-1] for p in machine_dirs(str(results))] == ["gpu"]
    (results / "cpu").mkdir()
    (results / "cpu" / "abc-env.json").write_text("{}")  # results without machine.json: an error
    with pytest.raises(ToolError, match="cpu/machine.json"):
        machine_dirs(str(results))
