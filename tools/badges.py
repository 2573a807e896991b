"""Static SVG badges next to the published site: a headline benchmark's latest value, open regressions.

Written to ``<html>/badges/``: ``latest.svg`` (e.g. "forward 32K | 0.74 ms") and ``regressions.svg``
("regressions | 0", green; "N unconfirmed", orange, while the detector's open candidates wait for
an interleaved re-measurement; "N confirmed", red, once ``tools.bisect`` confirmed one). Plain SVG from a template here, no dependency.

Usage: ``python -m tools.badges --benchmark NAME [--params k=v,...] [--label TEXT]
[--results results] [--html html] [--report report.json]``
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from xml.sax.saxutils import escape

from asv import util as asv_util

from tools import cli
from tools.lib.errors import ToolError
from tools.lib.files import check_writable, write_text_atomic
from tools.lib.regressions import find_regressions
from tools.lib.verdicts import with_confirmations
from tools.lib.series import Series, series_from_results

GREEN, RED, BLUE, GREY, ORANGE = "#4c1", "#e05d44", "#007ec6", "#9f9f9f", "#fe7d37"
CHAR_WIDTH = 6.5  # px per character of 11px Verdana, close enough for a badge
PADDING = 10

TEMPLATE = """<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="20" role="img" aria-label="{label}: {value}">
<title>{label}: {value}</title>
<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>
<clipPath id="r"><rect width="{width:.0f}" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)"><rect width="{lw:.0f}" height="20" fill="#555"/><rect x="{lw:.0f}" width="{vw:.0f}" height="20" fill="{color}"/><rect width="{width:.0f}" height="20" fill="url(#s)"/></g>
<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">
<text x="{lx:.1f}" y="14">{label}</text><text x="{vx:.1f}" y="14">{value}</text>
</g>
</svg>
"""


def render_badge(label: str, value: str, color: str) -> str:
    """A flat two-part badge as SVG text; label and value are XML-escaped."""
    lw = round(len(label) * CHAR_WIDTH + PADDING)
    vw = round(len(value) * CHAR_WIDTH + PADDING)
    return TEMPLATE.format(width=lw + vw, lw=lw, vw=vw, lx=lw / 2, vx=lw + vw / 2, color=color,
                           label=escape(label, {'"': "&quot;"}), value=escape(value, {'"': "&quot;"}))


def parse_params(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise ToolError(f"--params must look like name=value,name=value; got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def pick_series(all_series: list[Series], benchmark: str, params: dict[str, str], machine: str | None) -> Series:
    """The one series named by benchmark, params and machine; a clear error if none or several."""
    matches = [s for s in all_series if s.benchmark == benchmark
               and all(s.params.get(k) == v for k, v in params.items())
               and (machine is None or s.machine == machine)]
    if not matches:
        raise ToolError(f"no results for {benchmark} with {params or 'any params'}"
                        f"{' on ' + machine if machine else ''}")
    if len(matches) > 1:
        options = "; ".join(f"{s.machine}: {s.label}" for s in matches[:5])
        raise ToolError(f"{len(matches)} series match {benchmark}; narrow with --params/--machine "
                        f"(e.g. {options})")
    return matches[0]


def latest_value(series: Series) -> str:
    """The most recent commit's value, human-readable in the benchmark's unit (e.g. '0.74ms')."""
    for point in reversed(series.points):
        if point.value is not None and point.value == point.value:
            try:
                return asv_util.human_value(point.value, series.unit)
            except (ValueError, OverflowError):  # inf, or a value asv cannot scale
                return str(point.value)
    return "n/a"


def read_report_count(path: str) -> tuple[int, int]:
    """(open regressions, how many of them confirmed) in a ``tools.report --format json`` file;
    ToolError if it is not one."""
    if not os.path.isfile(path):
        raise ToolError(f"report {path} not found (write it with tools.report --format json --output)")
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ToolError(f"report {path} is not valid JSON ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("regressions"), list) \
            or not all(isinstance(r, dict) for r in report["regressions"]):
        raise ToolError(f"report {path} is not tools.report JSON (expected an object with a "
                        f"'regressions' list)")
    open_ones = [r for r in report["regressions"] if r.get("open", True)]
    return len(open_ones), sum(1 for r in open_ones if r.get("status") == "confirmed")


def open_regression_count(report: str | None, all_series: list[Series], detector: str, threshold: float,
                          results_dir: str | None = None) -> tuple[int, int]:
    """(open regressions, how many of them confirmed), from a tools.report JSON file if given,
    else detected here (confirmations read from ``results_dir``)."""
    if report:
        return read_report_count(report)
    found, _ = find_regressions(all_series, detector, threshold)
    if results_dir:
        found = with_confirmations(found, results_dir)
    open_ones = [r for r in found if r.open]
    return len(open_ones), sum(r.status == "confirmed" for r in open_ones)


def regressions_badge(open_count: int, confirmed: int) -> str:
    """Green "0"; red "N confirmed" once a re-measurement confirmed one; orange "N unconfirmed"
    while the detector's candidates wait for confirmation (tools.bisect)."""
    if open_count == 0:
        return render_badge("regressions", "0", GREEN)
    if confirmed:
        return render_badge("regressions", f"{confirmed} confirmed", RED)
    return render_badge("regressions", f"{open_count} unconfirmed", ORANGE)


def write(path: str, svg: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_text_atomic(path, svg)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.badges", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="asv results directory (default: results)")
    parser.add_argument("--html", default="html", help="published site; badges go to <html>/badges")
    parser.add_argument("--benchmark", help="headline benchmark for latest.svg (omit to skip that badge)")
    parser.add_argument("--params", help="its parameters, name=value,... (e.g. seq_len=32768)")
    parser.add_argument("--machine", help="machine whose results the headline shows")
    parser.add_argument("--label", help="text on the left of latest.svg (default: the benchmark name)")
    parser.add_argument("--report", help="tools.report --format json output to count open regressions from")
    parser.add_argument("--detector", choices=("samples", "asv"), default="samples")
    parser.add_argument("--threshold", type=cli.ratio_above_one, default=1.10,
                        help="smallest after/before ratio counted (a finite ratio above 1)")
    args = parser.parse_args(argv)

    out_dir = os.path.join(args.html, "badges")
    check_writable(os.path.join(out_dir, "regressions.svg"), make_parents=True)
    params = parse_params(args.params)
    all_series = series_from_results(args.results)
    # Everything is computed before the first badge is written: a failure leaves the old badges.
    badges = {}
    if args.benchmark:
        series = pick_series(all_series, args.benchmark, params, args.machine)
        badges["latest.svg"] = render_badge(args.label or args.benchmark.split(".")[-1], latest_value(series), BLUE)
    count, confirmed = open_regression_count(args.report, all_series, args.detector, args.threshold, args.results)
    badges["regressions.svg"] = regressions_badge(count, confirmed)
    for name, svg in badges.items():
        write(os.path.join(out_dir, name), svg)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
