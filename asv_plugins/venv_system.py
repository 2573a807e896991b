"""asv environment type ``venv-system``: a stdlib venv that reuses the machine's installed torch.

For a GPU box with a CUDA torch preinstalled and no package registry. ``python -m venv
--system-site-packages`` makes an isolated environment per configuration once; every commit then
only gets this project's wheel installed (pip ``--no-index --no-deps``), so nothing is downloaded,
ever. Unlike asv's ``existing`` type, it can run a commit range.

Selecting it: ``asv run --config asv.gpu.conf.json`` or ``asv run -E venv-system:3.12``.

Which interpreter: ``$ASV_VENV_SYSTEM_PYTHON`` if set, else the interpreter running asv when its
version matches, else ``pythonX.Y`` on PATH. When that interpreter is itself a virtualenv/conda
env, ``--system-site-packages`` would only expose its *base* installation, so its own
site-packages directories are added through a ``.pth`` file after the env's own ones (this env's
copy of the project always wins).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from asv import environment, util
from asv.console import log
from packaging.specifiers import SpecifierSet
from packaging.version import Version

# What asv needs inside the env: its benchmark runner, and setuptools for the configs'
# build_command (so not "build"). pympler is left out: asv_runner only wants it for mem_*
# benchmarks, which this suite does not have.
RUNNER_MODULES = {"asv_runner": "asv_runner", "setuptools": "setuptools"}
SITE_PTH_NAME = "_asv_venv_system_site.pth"


def _python_version(executable: str) -> str | None:
    """``"X.Y"`` of an interpreter, or None when it cannot be run (e.g. a pyenv shim with no target)."""
    try:
        out = subprocess.run([executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str) -> str | None:
    """The interpreter to base the env on, for a ``"X.Y"`` version spec (see module docstring)."""
    override = os.environ.get("ASV_VENV_SYSTEM_PYTHON")
    candidates = [override] if override else []
    if "%d.%d" % sys.version_info[:2] == version:
        candidates.append(sys.executable)
    try:
        candidates.append(util.which(f"python{version}"))
    except OSError:
        pass
    for exe in candidates:
        if exe and _python_version(exe) == version:
            return exe
    return None


class VenvSystem(environment.Environment):
    """A ``venv --system-site-packages`` environment; requirements come from the machine, not an index."""

    tool_name = "venv-system"
    matches_python_fallback = False

    def __init__(self, conf, python, requirements, tagged_env_vars):
        if not re.fullmatch(r"\d+\.\d+", python or ""):
            raise environment.EnvironmentUnavailable(
                f"venv-system needs a python version like 3.12, got {python!r}")
        executable = find_python(python)
        if executable is None:
            raise environment.EnvironmentUnavailable(
                f"venv-system: no working python{python} (set ASV_VENV_SYSTEM_PYTHON to its path)")
        self._executable = executable
        # The base class derives the env's directory from these before it sets them itself.
        self._python, self._requirements = python, requirements
        super().__init__(conf, python, requirements, tagged_env_vars)

    @classmethod
    def matches(cls, python):
        return bool(re.fullmatch(r"\d+\.\d+", python or "")) and find_python(python) is not None

    def _setup(self):
        env = dict(os.environ, **self.build_env_vars)
        log.info(f"Creating venv (system site packages) for {self.name} from {self._executable}")
        util.check_call([self._executable, "-m", "venv", "--system-site-packages", self._path], env=env)
        self._link_source_site_packages()
        self._check_runner_modules()
        self._install_requirements()

    def _link_source_site_packages(self) -> None:
        """Expose the source interpreter's own site-packages (it may be a venv/conda env with torch)."""
        source_dirs = json.loads(util.check_output([
            self._executable, "-c",
            "import json, site, sysconfig; p = sysconfig.get_paths(); "
            "print(json.dumps(site.getsitepackages() + [p['purelib'], p['platlib']]))"]))
        own_dirs = json.loads(self.run(["-c", "import json, site; print(json.dumps(site.getsitepackages()))"]))
        extra = [d for d in dict.fromkeys(source_dirs) if os.path.isdir(d) and d not in own_dirs]
        if extra:
            with open(os.path.join(own_dirs[0], SITE_PTH_NAME), "w", encoding="utf-8") as f:
                f.write("\n".join(extra) + "\n")

    def _missing_modules(self, modules) -> list[str]:
        missing = []
        for module in modules:
            try:
                self.run(["-c", f"import {module}"], display_error=False)
            except util.ProcessError:
                missing.append(module)
        return missing

    def _check_runner_modules(self) -> None:
        """asv_runner and setuptools must come from the machine or a local wheel directory."""
        missing = self._missing_modules(RUNNER_MODULES)
        if missing:
            self._pip_install_offline([RUNNER_MODULES[m] for m in missing])

    def _install_requirements(self) -> None:
        """Matrix requirements (e.g. torch==2.13.0) must already be met by the machine's packages.

        Checked by installed version, not with pip's resolver: pip would also re-resolve the
        package's own dependencies (torch wants a newer setuptools than the one venv bundles)
        and, with no registry, fail on something the benchmarks never import.
        """
        unmet = []
        for key, val in self._requirements.items():
            name = key[4:] if key.startswith("pip+") else key
            parsed = util.ParsedPipDeclaration(f"{name} {val}".strip())
            if parsed.path or not self._has_version(parsed.pkgname, parsed.specification or ""):
                unmet.append(parsed.path or f"{parsed.pkgname}{parsed.specification or ''}")
        if unmet:
            self._pip_install_offline(["--no-deps", *unmet])

    def _has_version(self, name: str, specification: str) -> bool:
        try:
            version = self.run(["-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                               display_error=False).strip()
        except util.ProcessError:
            return False
        return SpecifierSet(specification).contains(Version(version), prereleases=True)

    def _pip_install_offline(self, reqs: list[str]) -> None:
        # --no-index keeps --find-links (a local wheel dir from pip config or PIP_FIND_LINKS) usable.
        names = ", ".join(r for r in reqs if not r.startswith("-"))
        log.info(f"Installing {names} offline for {self.name}")
        try:
            self.run(["-m", "pip", "install", "--no-index", *reqs], display_error=False)
        except util.ProcessError as err:
            said = (err.stderr or err.stdout or "").strip().splitlines()[-1:]
            raise util.UserError(
                f"venv-system: {names} not installed for {self._executable} and not installable "
                f"offline (no registry is used); install them there first. pip said: {said}") from None

    def run(self, args, **kwargs):
        log.debug(f"Running '{' '.join(args)}' in {self.name}")
        return self.run_executable("python", args, **kwargs)
