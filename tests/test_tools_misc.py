"""tools.machine, tools.badges and the benchmarks workflow."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import psutil
import pytest
import yaml

from tools import badges, machine
from tools.lib.errors import ToolError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(ROOT, ".github", "workflows", "benchmarks.yml")
SVG = "{http://www.w3.org/2000/svg}"


def _tool(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": ROOT})


# --- machine ---------------------------------------------------------------------------------

def test_machine_file_holds_real_facts_and_keeps_other_machines(tmp_path, capsys):
    path = tmp_path / "asv-machine.json"
    path.write_text(json.dumps({"gpu-box": {"machine": "gpu-box", "cpu": "other"}, "version": 1}))
    assert machine.main(["--path", str(path), "--cpu-only"]) == 0
    printed = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["gpu-box"] == {"machine": "gpu-box", "cpu": "other"} and data["version"] == 1
    (name,) = [k for k in data if k not in ("gpu-box", "version")]
    entry = data[name]
    assert entry["machine"] == name and name in printed
    assert abs(int(entry["ram"]) - psutil.virtual_memory().total) <= 2 ** 29  # whole GiB: a reboot's reading moves
    assert entry["host_id"] == machine.host_id()[0]
    assert int(entry["num_cpu"]) == psutil.cpu_count()
    assert entry["os"].split()[0] == os.uname().sysname
    import torch
    assert entry["torch"] == torch.__version__
    # Name from hardware facts (plus the host id when another host's results hold that name): no hostname.
    assert name.startswith(f"cpu-{machine.slug(entry['cpu'])}-{psutil.cpu_count(logical=False)}c")
    assert os.uname().nodename.lower() not in name
    assert machine.main(["--path", str(path), "--cpu-only"]) == 0
    assert json.loads(path.read_text()) == data


def test_machine_names_from_facts():
    assert machine.machine_name({"cpu": "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", "num_cores": "56"}) \
        == "cpu-intel-xeon-platinum-8480-56c"
    assert machine.machine_name({"cpu": "x", "num_cores": "8", "gpu": "NVIDIA H100 80GB HBM3",
                                 "gpu_count": "8"}) == "h100-80gb-hbm3x8"


def test_unreadable_machine_file_is_not_touched(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(ToolError, match="not touching it"):
        machine.main(["--path", str(path)])
    assert path.read_text() == "{not json"


# --- badges ----------------------------------------------------------------------------------

def _texts(svg_path):
    root = ET.parse(svg_path).getroot()
    assert root.tag == f"{SVG}svg"
    return [t.text for t in root.iter(f"{SVG}text")]


def test_badges_are_valid_svg_with_the_latest_value_and_open_count(tmp_path):
    from test_tools_report import N_COMMITS, STEP_AT, _fake_commits, _hourly, write_results

    results = tmp_path / "results"
    write_results(results, _fake_commits(N_COMMITS), _hourly(N_COMMITS), lambda i: 2.0 if i >= STEP_AT else 1.0)
    done = _tool("tools.badges", "--results", str(results), "--html", str(tmp_path / "html"),
                 "--benchmark", "suite.time_f", "--params", "seq_len=4096", "--label", "f <4096>",
                 "--detector", "asv")
    assert done.returncode == 0, done.stderr
    label, value = _texts(tmp_path / "html" / "badges" / "latest.svg")
    assert label == "f <4096>"
    assert re.fullmatch(r"[12]\.\d+ms", value) and 1.8 <= float(value[:-2]) <= 2.2  # ~2 ms after the step
    assert _texts(tmp_path / "html" / "badges" / "regressions.svg") == ["regressions", "2 unconfirmed"]


def test_badge_for_an_ambiguous_benchmark_is_a_clear_error(tmp_path):
    from test_tools_report import _fake_commits, _hourly, write_results

    write_results(tmp_path / "r", _fake_commits(3), _hourly(3), lambda i: 1.0)
    done = _tool("tools.badges", "--results", str(tmp_path / "r"), "--html", str(tmp_path / "h"),
                 "--benchmark", "suite.time_f")
    assert done.returncode == 1 and "2 series match suite.time_f" in done.stderr


def test_badge_text_is_escaped():
    svg = badges.render_badge('a<b & "c"', "1 < 2", badges.GREEN)
    root = ET.fromstring(svg)
    assert [t.text for t in root.iter(f"{SVG}text")] == ['a<b & "c"', "1 < 2"]


# --- workflow ---------------------------------------------------------------------------------

def _workflow():
    with open(WORKFLOW, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _run_lines(flow):
    return [step["run"] for job in flow["jobs"].values() for step in job["steps"] if "run" in step]


def test_workflow_triggers_and_jobs():
    flow = _workflow()
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in triggers and "schedule" in triggers
    pr = flow["jobs"]["pull-request"]
    checkout = next(s for s in pr["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    runs = "\n".join(_run_lines(flow))
    assert "ATTNBENCH_PROFILE" in json.dumps(pr) and "tools.compare" in runs
    assert "$GITHUB_STEP_SUMMARY" in runs and "asv publish" in runs
    nightly = json.dumps(flow["jobs"]["nightly"])
    assert "standard" in nightly and "actions/deploy-pages" in nightly


def test_every_module_and_make_target_the_workflow_calls_exists():
    runs = "\n".join(_run_lines(_workflow()))
    modules = set(re.findall(r"python -m ([A-Za-z_][\w.]*)", runs)) - {"pip"}
    assert {"tools.report", "tools.badges", "tools.machine"} <= modules
    for module in modules:
        path = os.path.join(ROOT, *module.split(".")) + ".py"
        assert os.path.isfile(path), f"workflow calls python -m {module}, but {path} is missing"
        if module.startswith("tools."):
            assert _tool(module, "--help").returncode == 0, module
    targets = re.findall(r"\bmake\s+([\w-]+)", runs)
    if targets:
        makefile = open(os.path.join(ROOT, "Makefile"), encoding="utf-8").read()
        for target in targets:
            assert re.search(rf"^{re.escape(target)}\s*:", makefile, re.M), f"make {target} has no rule"
    # Every --option a tools.X call passes must be one that tool's --help lists.
    joined = runs.replace("\\\n", " ")
    for module, args in re.findall(r"python -m (tools\.\w+)([^\n]*)", joined):
        help_text = _tool(module, "--help").stdout
        for option in re.findall(r"(--[\w-]+)", args):
            assert option in help_text, f"{module} has no {option}"
