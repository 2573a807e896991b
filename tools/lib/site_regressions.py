"""asv's Regressions page and feed without the entries asv gets backwards.

asv treats every benchmark as lower-is-better: for throughput and capacity (units in
``tools.lib.regressions.HIGHER_IS_BETTER_UNITS``) its site lists rises as regressions and never a
drop. This removes those entries from ``html/regressions.json`` (the page) and
``html/regressions.xml`` (the Atom feed); ``tools.report`` and the badges search those series the
right way round.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tools.lib.regressions import HIGHER_IS_BETTER_UNITS

ATOM = "http://www.w3.org/2005/Atom"


def higher_is_better(benchmarks: dict) -> set[str]:
    """Names in a benchmarks.json whose unit is a throughput or a capacity."""
    return {name for name, definition in benchmarks.items()
            if isinstance(definition, dict) and definition.get("unit") in HIGHER_IS_BETTER_UNITS}


def _benchmark_of(entry_name: str) -> str:
    return entry_name.split("(", 1)[0]  # "bench.Class.track_x('impl', 32768)" -> "bench.Class.track_x"


def _drop_from_feed(feed: Path, names: set[str]) -> None:
    ET.register_namespace("", ATOM)
    tree = ET.parse(feed)
    root = tree.getroot()
    for entry in root.findall(f"{{{ATOM}}}entry"):
        title = entry.findtext(f"{{{ATOM}}}title") or ""  # "43.55% bench.Class.time_x(...)"
        if _benchmark_of(title.split(" ", 1)[-1]) in names:
            root.remove(entry)
    tree.write(feed, encoding="utf-8", xml_declaration=True)


def drop_backwards_regressions(html: Path, benchmarks_json: Path) -> int:
    """Remove higher-is-better benchmarks' entries from the site's regressions; return how many."""
    page = html / "regressions.json"
    if not page.is_file():
        return 0
    names = higher_is_better(json.loads(benchmarks_json.read_text()))
    data = json.loads(page.read_text())
    kept = [entry for entry in data.get("regressions", []) if _benchmark_of(entry[0]) not in names]
    dropped = len(data.get("regressions", [])) - len(kept)
    if dropped:
        data["regressions"] = kept
        page.write_text(json.dumps(data))
        if (html / "regressions.xml").is_file():
            _drop_from_feed(html / "regressions.xml", names)
    return dropped
