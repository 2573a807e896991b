"""Whether the browser tests may skip: never in CI, where a missing browser is a failure."""
from __future__ import annotations

import os

import pytest

from site_assets.browse import find_browser


def browser_required() -> bool:
    """True where ``ATTNBENCH_REQUIRE_BROWSER=1`` (set by `.ci/run`) or ``CI`` is set."""
    return os.environ.get("ATTNBENCH_REQUIRE_BROWSER") == "1" or bool(os.environ.get("CI"))


def find_browser_or_skip() -> tuple[str, str]:
    """(chromium, chromedriver); skips the calling test where the browser is absent and not required."""
    try:
        return find_browser()
    except RuntimeError as exc:
        if browser_required():
            raise
        pytest.skip(f"{exc} (required in CI)")
