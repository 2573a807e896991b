"""asv.conf.json / asv.gpu.conf.json and the venv-system environment plugin, read through asv itself."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

asv_config = pytest.importorskip("asv.config")
from asv import environment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["asv.conf.json", "asv.gpu.conf.json"]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # asv resolves the plugin "." and relative dirs from here
    # Loading asv.conf.json's "plugins" the way asv does registers the environment class.
    from asv.plugin_manager import plugin_manager
    plugin_manager.import_plugin(".asv_plugins.venv_system")


def _load(name: str):
    return asv_config.Config.load(str(ROOT / name))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_fields(name):
    from asv import util

    util.load_json(str(ROOT / name), api_version=1, js_comments=True)  # raises unless "version": 1
    conf = _load(name)
    assert conf.project == "attnbench" and conf.repo == "."
    assert conf.branches == ["main"]
    assert (conf.html_dir, conf.results_dir, conf.env_dir, conf.benchmark_dir) == (
        "html", "results", ".asv/env", "benchmarks")
    assert ".asv_plugins.venv_system" in conf.plugins
    assert conf.build_cache_size >= 20
    assert conf.launch_method == "forkserver"


@pytest.mark.parametrize("name", CONFIGS)
def test_commit_install_never_resolves_or_downloads(name):
    conf = _load(name)
    install = " ".join(conf.install_command)
    assert "--no-deps" in install and "--no-index" in install and "{wheel_file}" in install
    build = " ".join(conf.build_command)
    assert "build_meta" in build and "{build_cache_dir}" in build  # no pip resolver, no isolation
    assert "torch" not in build + install


def test_cpu_config_pins_torch_once_per_environment():
    conf = _load("asv.conf.json")
    assert conf.environment_type == "virtualenv" and conf.matrix == {"req": {"torch": "2.13.0"}}
    envs = list(environment.get_environments(conf, None, verbose=False))
    assert [e.name for e in envs] == ["virtualenv-py3.11-torch2.13.0"]


def test_gpu_config_uses_the_plugin_and_the_machines_torch():
    conf = _load("asv.gpu.conf.json")
    assert conf.environment_type == "venv-system" and conf.pythons == ["3.12"] and not conf.matrix


def test_venv_system_is_selectable_from_the_command_line():
    conf = _load("asv.conf.json")
    version = "%d.%d" % sys.version_info[:2]
    (env,) = environment.get_environments(conf, [f"venv-system:{version}"], verbose=False)
    assert env.tool_name == "venv-system" and env.name.startswith(f"venv-system-py{version}")


def test_venv_system_refuses_a_python_it_cannot_find():
    from asv_plugins import venv_system

    assert venv_system.find_python("2.1") is None
    assert venv_system.find_python("%d.%d" % sys.version_info[:2]) is not None
    conf = _load("asv.conf.json")
    assert list(environment.get_environments(conf, ["venv-system:2.1"], verbose=False)) == []


@pytest.mark.slow
def test_venv_system_env_sees_the_machines_torch(tmp_path):
    """A real env: made offline, torch imported from the source interpreter, project installable."""
    from asv_plugins import venv_system

    conf = _load("asv.conf.json")
    conf.env_dir = str(tmp_path / "env")
    version = "%d.%d" % sys.version_info[:2]
    env = venv_system.VenvSystem(conf, version, {}, {})
    env.create()
    python = Path(env._path) / "bin" / "python"
    code = "import sys, torch, asv_runner; print(sys.prefix); print(torch.__file__)"
    prefix, torch_file = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                                        check=True, env={**os.environ, "PYTHONPATH": ""}).stdout.split()
    import torch

    assert Path(prefix) == Path(env._path)  # isolated env ...
    assert Path(torch_file) == Path(torch.__file__)  # ... reusing this machine's torch, not a copy
