"""What the suite needs is there: a missing dependency fails here instead of turning other tests
into silent skips.

triton (requirements-test.txt) is always required: without it every kernel test would skip.
The browser (Debian's chromium and chromium-driver, which `.ci/run` installs) is required where
``ATTNBENCH_REQUIRE_BROWSER=1`` (set by `.ci/run`) or ``CI`` is set; a developer machine without
it skips the one browser test.
"""
from __future__ import annotations

import os


def test_triton_imports_so_the_kernel_tests_run():
    import triton
    import triton.language  # noqa: F401

    from triton_interpreter import HAVE_TRITON

    assert HAVE_TRITON and triton.__version__


def test_the_triton_kernels_import():
    import importlib

    names = [n for n in ("kernels", "triton_dilated", "triton_block_sparse")
             if importlib.util.find_spec(f"attention.{n}") is not None]
    assert names, "no Triton kernel module found in the attention package"
    for name in names:
        importlib.import_module(f"attention.{name}")


def test_the_browser_is_installed_where_required():
    from browser_helpers import find_browser_or_skip

    chromium, driver = find_browser_or_skip()  # raises in CI, naming what to install
    assert os.access(chromium, os.X_OK) and os.access(driver, os.X_OK)
