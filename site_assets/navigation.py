"""Link asv's published ``index.html`` to the landing page and open the landing page first.

Adds an "Overview" entry at the head of asv's navigation bar, and a one-line script in the page's
head that sends a bare ``index.html`` (no ``#`` route: what a browser or ``asv preview`` opens
first) to the landing page. Every asv route keeps working, its grid included (``index.html#/``).
Idempotent: a page that already has the entry is left as it is.
"""
from __future__ import annotations

from pathlib import Path

from tools.lib.errors import ToolError
from tools.lib.files import write_text_atomic

__all__ = ["link_landing"]

MARKER = 'id="nav-li-overview"'
NAV_ANCHOR = '<li id="nav-li-" '  # asv's "Benchmark grid" entry, the first of its pages
HEAD_ANCHOR = "<head>"


def link_landing(html_dir: Path, page: str) -> bool:
    """Add the entry and the redirect to ``html_dir/index.html``; False when already there."""
    index = Path(html_dir) / "index.html"
    text = index.read_text(encoding="utf-8")
    if MARKER in text:
        return False
    if NAV_ANCHOR not in text or HEAD_ANCHOR not in text:
        raise ToolError(f"{index}: no {NAV_ANCHOR.strip()!r} navigation entry or <head> to extend "
                        "(asv's page layout changed?)")
    entry = f'<li {MARKER}><a href="{page}">Overview</a></li>\n\t'
    redirect = (f'{HEAD_ANCHOR}\n    <script>if (!window.location.hash) '
                f'window.location.replace("{page}");</script>')
    text = text.replace(NAV_ANCHOR, entry + NAV_ANCHOR, 1).replace(HEAD_ANCHOR, redirect, 1)
    write_text_atomic(str(index), text)
    return True
