"""Running a test file's Triton-kernel tests under the CPU interpreter, in a child pytest.

``TRITON_INTERPRET=1`` must be set before a kernel is defined (at import of its module), so a
kernel test file marks its kernel tests ``interpreted_only`` (skipped in the parent) and has one
``launcher_only`` test that calls ``run_interpreted_tests(__file__, n)``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
REPO = Path(__file__).resolve().parents[1]

try:
    import triton  # noqa: F401
    HAVE_TRITON = True
except ImportError:
    HAVE_TRITON = False

interpreted_only = pytest.mark.skipif(not INTERPRETED, reason="runs in the TRITON_INTERPRET=1 child")
launcher_only = pytest.mark.skipif(INTERPRETED or not HAVE_TRITON, reason="parent-only launcher; needs triton")


def run_interpreted_tests(test_file: str, expected_passed: int) -> None:
    """Run ``test_file``'s tests whose names contain "interpreted" with TRITON_INTERPRET=1."""
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test_file, "-k", "interpreted"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert f"{expected_passed} passed" in proc.stdout, proc.stdout[-3000:]
