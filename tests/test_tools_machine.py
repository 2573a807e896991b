"""tools.machine: one host, one machine. Hosts told apart by their id, reboots not splitting a
series, and the decision explained; checked against machine directories written here."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tools import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACTS = {"cpu": "AMD EPYC", "num_cores": "2", "host_id": "aaaaaaaaaaaa"}


def _results_with(tmp_path, name, facts):
    folder = tmp_path / "results" / name
    folder.mkdir(parents=True)
    (folder / "machine.json").write_text(json.dumps({"machine": name, **facts, "version": 1}))
    return str(tmp_path / "results")


def test_first_host_takes_the_hardware_name(tmp_path):
    name, why = machine.decide_name(FACTS, {}, None)
    assert name == "cpu-amd-epyc-2c" and "no results of another host" in why


def test_another_hosts_results_are_not_merged_into(tmp_path):
    results = _results_with(tmp_path, "cpu-amd-epyc-2c", {"cpu": "AMD EPYC", "host_id": "bbbbbbbbbbbb"})
    name, why = machine.decide_name(FACTS, {}, results)
    assert name == "cpu-amd-epyc-2c-aaaaaa"
    assert "host id bbbbbbbbbbbb" in why and "--name cpu-amd-epyc-2c" in why
    legacy = _results_with(tmp_path / "old", "cpu-amd-epyc-2c", {"cpu": "AMD EPYC"})  # no id recorded
    assert machine.decide_name(FACTS, {}, legacy)[0] == "cpu-amd-epyc-2c-aaaaaa"


def test_the_same_host_keeps_its_name(tmp_path):
    results = _results_with(tmp_path, "cpu-amd-epyc-2c", {"cpu": "AMD EPYC", "host_id": "aaaaaaaaaaaa"})
    assert machine.decide_name(FACTS, {}, results)[0] == "cpu-amd-epyc-2c"
    known = {"my-box": {"machine": "my-box", "host_id": "aaaaaaaaaaaa"}, "other": {"host_id": "cccccccccccc"}}
    name, why = machine.decide_name(FACTS, known, results)
    assert name == "my-box" and "already 'my-box'" in why


def test_reboot_facts_are_stored_rounded():
    assert machine.stable_os("Linux", "6.18.44-fc-v782") == machine.stable_os("Linux", "6.18.51-fc-v790") == "Linux 6.18"
    assert machine.stable_ram(25276063744) == machine.stable_ram(25276063744 - 3 * 2 ** 20) == str(24 * 2 ** 30)
    first, second = machine.host_id(), machine.host_id()
    assert first == second and len(first[0]) == 12


def test_the_command_explains_and_writes_the_host_id(tmp_path):
    path = tmp_path / "m.json"
    done = subprocess.run([sys.executable, "-m", "tools.machine", "--path", str(path), "--results", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    first = done.stdout.splitlines()[0]
    assert first.startswith("machine '") and "no results of another host" in first
    [entry] = [v for k, v in json.loads(path.read_text()).items() if k != "version"]
    assert entry["host_id"] == machine.host_id()[0]
