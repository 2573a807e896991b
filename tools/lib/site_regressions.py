"""asv's Regressions page and feed showing the project's verdicts instead of asv's raw steps.

``show_verdicts`` keeps on ``html/regressions.json`` (the page) and ``html/regressions.xml`` (the
Atom feed) only the entries of benchmarks with a confirmed verdict (``tools.lib.verdicts``), each
rewritten to the verdict's commit and its parent, so a reader never sees a step that re-measurement
did not confirm (a newcomer's noisy first run, a throughput's rise). ``drop_backwards_regressions``
below only removes asv's backwards entries.

asv treats every benchmark as lower-is-better: for throughput and capacity (units in
``tools.lib.regressions.HIGHER_IS_BETTER_UNITS``) its site lists rises as regressions and never a
drop. This removes those entries from ``html/regressions.json`` (the page) and
``html/regressions.xml`` (the Atom feed); ``tools.report`` and the badges search those series the
right way round.
"""
from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterable

from tools.lib.regressions import HIGHER_IS_BETTER_UNITS

ATOM = "http://www.w3.org/2005/Atom"


def higher_is_better(benchmarks: dict) -> set[str]:
    """Names in a benchmarks.json whose unit is a throughput or a capacity."""
    return {name for name, definition in benchmarks.items()
            if isinstance(definition, dict) and definition.get("unit") in HIGHER_IS_BETTER_UNITS}


def _benchmark_of(entry_name: str) -> str:
    return entry_name.split("(", 1)[0]  # "bench.Class.track_x('impl', 32768)" -> "bench.Class.track_x"


def _filter_feed(feed: Path, keep: Callable[[str], bool]) -> None:
    """Remove the Atom feed's entries whose name (``bench.Class.time_x(...)``) ``keep`` rejects."""
    ET.register_namespace("", ATOM)
    tree = ET.parse(feed)
    root = tree.getroot()
    for entry in root.findall(f"{{{ATOM}}}entry"):
        title = entry.findtext(f"{{{ATOM}}}title") or ""  # "43.55% bench.Class.time_x(...)"
        if not keep(title.split(" ", 1)[-1]):
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
            _filter_feed(html / "regressions.xml", lambda name: _benchmark_of(name) not in names)
    return dropped


def _machine_of(graph_path: str) -> str:
    """``graphs/arch-x86_64/.../machine-cpu-amd-epyc-2c/.../bench.json`` -> ``cpu-amd-epyc-2c``."""
    for part in graph_path.split("/"):
        if part.startswith("machine-"):
            return part[len("machine-"):]
    return ""


def _params_at(definition: dict, index) -> tuple[str, ...]:
    if index is None or not definition.get("params"):
        return ()
    combo = next(itertools.islice(itertools.product(*definition["params"]), index, index + 1))
    return tuple(str(v).strip("'") for v in combo)


def _value_at(html: Path, graph_path: str, revision: int | None, index) -> float | None:
    try:
        points = json.loads((html / graph_path).read_text())
    except (OSError, ValueError):
        return None
    for rev, value in points:
        if rev == revision:
            return value[index] if isinstance(value, list) and index is not None else value
    return None


def show_verdicts(html: Path, verdicts: Iterable, benchmarks_json: Path, statuses: tuple[str, ...] = ("confirmed",)) -> tuple[int, int]:
    """Keep only the page's and the feed's entries with a verdict of ``statuses``, rewritten to the
    verdict's commits; (entries kept, entries removed)."""
    page = html / "regressions.json"
    index_path = html / "index.json"
    if not page.is_file() or not index_path.is_file():
        return 0, 0
    benchmarks = json.loads(benchmarks_json.read_text())
    revision_of = {h: int(r) for r, h in json.loads(index_path.read_text()).get("revision_to_hash", {}).items()}
    wanted = {(v.machine, v.benchmark, tuple(v.params)): v for v in verdicts if v.status in statuses}
    data = json.loads(page.read_text())
    kept = []
    for entry in data.get("regressions", []):
        name, graph_path, graph_params, index = entry[0], entry[1], entry[2], entry[3]
        benchmark = _benchmark_of(name)
        definition = benchmarks.get(benchmark)
        if not isinstance(definition, dict):
            continue
        verdict = wanted.get((_machine_of(graph_path), benchmark, _params_at(definition, index)))
        if verdict is None or verdict.commit not in revision_of:
            continue
        after = revision_of[verdict.commit]
        before = revision_of.get(verdict.parent) if verdict.parent else None
        value_before = _value_at(html, graph_path, before, index) if before is not None else None
        value_after = _value_at(html, graph_path, after, index)
        if value_after is None:
            continue
        if value_before is None:
            value_before = value_after / verdict.factor
        kept.append([name, graph_path, graph_params, index, value_after, value_before,
                     [[before, after, value_before, value_after]]])
    removed = len(data.get("regressions", [])) - len(kept)
    data["regressions"] = kept
    page.write_text(json.dumps(data))
    feed = html / "regressions.xml"
    if feed.is_file():
        kept_names = {entry[0] for entry in kept}
        _filter_feed(feed, lambda name: name in kept_names)
    return len(kept), removed

