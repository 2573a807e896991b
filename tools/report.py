"""Report the regressions in asv results (or a published site) as Markdown or JSON.

Markdown suits a PR comment or ``$GITHUB_STEP_SUMMARY``; one row per regression, like pyperf
compare_to: status (confirmed by an interleaved re-measurement, ``tools.bisect``, or a candidate),
benchmark, params, last good and first bad commit, before/after, the factor (worse in the
benchmark's own direction), p and the benchmark's noise floor.

Usage: ``python -m tools.report [--results results | --html html] [--format md|json]
[--detector samples|asv] [--threshold 1.1] [--fail-on-regression] [--output FILE]``
"""
from __future__ import annotations

import argparse
import json
import sys

from asv import util as asv_util

from tools import cli
from tools.lib.errors import ToolError
from tools.lib.files import check_writable, write_text_atomic
from tools.lib.regressions import Regression, find_regressions, higher_is_better
from tools.lib.verdicts import with_confirmations
from tools.lib.series import Series, cannot_judge, series_from_results, series_from_site


def _commit_count(all_series: list[Series]) -> int:
    return len({p.commit for s in all_series for p in s.points})


def to_markdown(found: list[Regression], all_series: list[Series], detector: str, threshold: float) -> str:
    head = (f"### Benchmark regressions\n\nDetector: `{detector}`, threshold {threshold:.2f}x; "
            f"{len(all_series)} series over {_commit_count(all_series)} commits checked.\n")
    if not found:
        return head + f"\nNo regressions at or above {threshold:.2f}x.\n"
    rows = ["| Status | Benchmark | Params | Machine | Last good | First bad | Before | After | Factor | p | "
            "Noise floor | Open |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(found, key=lambda r: (r.status != "confirmed", -r.ratio)):
        params = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "-"
        p_value = "-" if r.p_value is None else f"{r.p_value:.2g}"
        floor = "-" if r.noise_floor is None else f"{100 * r.noise_floor:.1f}%"
        worse = "worse" if higher_is_better(r.unit) else "slower"
        rows.append(f"| {r.status} | `{r.benchmark}` | {params} | {r.machine} | `{r.last_good[:8]}` | "
                    f"`{r.first_bad[:8]}` | {asv_util.human_value(r.before, r.unit)} | "
                    f"{asv_util.human_value(r.after, r.unit)} | **{r.ratio:.2f}x {worse}** | {p_value} | {floor} | "
                    f"{'yes' if r.open else 'fixed'} |")
    return head + f"\n{len(found)} regression(s):\n\n" + "\n".join(rows) + "\n"


def to_json(found: list[Regression], all_series: list[Series], detector: str, threshold: float) -> str:
    return json.dumps({
        "detector": detector, "threshold": threshold, "series_checked": len(all_series),
        "commits": _commit_count(all_series), "regressions": [r.to_json() for r in found],
    }, indent=2)


def _with_unjudged(text: str, all_series: list[Series], fmt: str) -> str:
    """The report plus the series no detector could judge (a zero or infinite value), each named."""
    unjudged = [(s, why) for s in all_series if (why := cannot_judge(s)) is not None]
    if fmt == "json":
        data = json.loads(text)
        data["cannot_judge"] = [{"machine": s.machine, "benchmark": s.benchmark, "params": s.params,
                                 "reason": why} for s, why in unjudged]
        return json.dumps(data, indent=2)
    if not unjudged:
        return text
    lines = [f"- `{s.benchmark}` ({s.label or '-'}) on {s.machine}: {why}" for s, why in unjudged]
    return text.rstrip("\n") + f"\n\nCannot judge {len(unjudged)} series:\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--results", default="results", help="asv results directory (default: results)")
    source.add_argument("--html", help="a published asv site directory instead of the results")
    parser.add_argument("--repo", help="git repository: order commits as asv does (rev-list --date-order)")
    parser.add_argument("--format", choices=("md", "json"), default="md")
    parser.add_argument("--output", help="write here instead of stdout")
    parser.add_argument("--detector", choices=("samples", "asv"), default="samples",
                        help="samples: sample-aware test (tools.lib.detect); asv: asv's step_detect (default: samples)")
    parser.add_argument("--threshold", type=cli.ratio_above_one, default=1.10,
                        help="smallest after/before ratio reported (a finite ratio above 1)")
    parser.add_argument("--alpha", type=cli.probability, default=0.01,
                        help="significance level of the samples detector, in (0, 1)")
    parser.add_argument("--benchmark", help="only benchmarks whose name contains this text")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any regression is found")
    args = parser.parse_args(argv)
    if args.output:
        check_writable(args.output)  # before the work, not after it

    all_series = series_from_site(args.html) if args.html else series_from_results(args.results, args.repo)
    if args.benchmark:
        named = [s for s in all_series if args.benchmark in s.benchmark]
        if all_series and not named:
            raise ToolError(f"no benchmark name contains {args.benchmark!r} (e.g. {all_series[0].benchmark})")
        all_series = named
    detector = "asv" if args.html and args.detector == "samples" else args.detector  # a site keeps no samples
    found, used = find_regressions(all_series, detector, args.threshold, args.alpha)
    if not args.html:
        found = with_confirmations(found, args.results)  # confirmed / candidate, noise floors
    render = to_json if args.format == "json" else to_markdown
    text = render(found, all_series, used, args.threshold)
    text = _with_unjudged(text, all_series, args.format)
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 1 if found and args.fail_on_regression else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
