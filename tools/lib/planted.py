"""Throwaway git histories of this project with a planted slowdown: the reference that the
end-to-end test (``tests/test_e2e_planted.py``) and the planted-regression trials
(``scripts/planted_trials.py``) judge the suite's verdicts against.

A history is a new repository holding the project's tracked files (recorded results and images
left out: asv does not build them), ``commits`` commits on ``main``: the base, then one line added
to ``NOTES.txt`` per commit, and at ``plant_at`` the ``plant`` appended to one source file. Every
history shares one asv environment directory, so torch is installed once.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tools.lib.errors import ToolError

__all__ = ["Plant", "project_files", "make_history", "bench_history"]


@dataclass(frozen=True)
class Plant:
    """Text appended to ``path`` (relative to the repository) in the planted commit, with that
    commit's ``message``."""

    path: str
    text: str
    message: str


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolError(f"git {' '.join(args)} in {repo}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout.strip()


def project_files(project: Path) -> list[str]:
    """The project's tracked files that asv builds (recorded results and images left out)."""
    return [f for f in _git(project, "ls-files").splitlines()
            if not f.startswith(("results/", "html/", "docs/img/")) and (project / f).is_file()]


def make_history(project: Path, repo: Path, env_dir: Path, commits: int, plant_at: Optional[int],
                 plant: Optional[Plant]) -> list[str]:
    """Create ``repo`` (a new folder) as a copy of ``project`` with ``commits`` commits, ``plant``
    applied in commit ``plant_at`` (0 = the base; None: no plant), asv's ``env_dir`` set to
    ``env_dir``. Returns the commits' full hashes, oldest first."""
    if commits < 2:
        raise ToolError(f"a history needs 2 or more commits, got {commits}")
    if plant_at is not None and (plant is None or not 1 <= plant_at < commits):
        raise ToolError(f"plant_at must be a commit after the base (1..{commits - 1}) with a plant, got {plant_at}")
    for rel in project_files(project):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / rel, repo / rel)
    from asv import util  # asv's own reader: asv.conf.json has comments

    conf = util.load_json(str(repo / "asv.conf.json"), js_comments=True)
    conf["env_dir"] = str(env_dir)  # one torch install shared by every history
    (repo / "asv.conf.json").write_text(json.dumps(conf, indent=2))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "planted@attnbench.invalid")
    _git(repo, "config", "user.name", "planted")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    shas = [_git(repo, "rev-parse", "HEAD")]
    notes = repo / "NOTES.txt"
    for i in range(1, commits):
        notes.write_text((notes.read_text() if notes.exists() else "") + f"change {i}\n")
        message = f"change {i}"
        if i == plant_at and plant is not None:
            target = repo / plant.path
            target.write_text(target.read_text() + plant.text)
            message = plant.message
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", message)
        shas.append(_git(repo, "rev-parse", "HEAD"))
    return shas


def bench_history(repo: Path, env: dict, machine: str, shas: list[str], bench_regex: str) -> subprocess.CompletedProcess:
    """Measure every one of ``shas`` as ``make bench`` measures a range: one ``asv run`` with samples
    recorded and rounds interleaved across the commits, so a shift of the machine's speed part-way
    through falls on every commit alike. Returns asv's finished process (exit 2: some benchmark
    failed at some commit, the rest is recorded)."""
    hashes = repo.parent / f"{repo.name}-hashes.txt"
    hashes.write_text("\n".join(shas) + "\n")
    return subprocess.run([sys.executable, "-m", "asv", "run", "--machine", machine, "--launch-method", "forkserver",
                           "--show-stderr", "--record-samples", "--interleave-rounds", "-b", bench_regex,
                           f"HASHFILE:{hashes}"], cwd=repo, env=env, capture_output=True, text=True)
