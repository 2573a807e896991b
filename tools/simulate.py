"""Evaluate the regression detector against asv's step_detect and Apache Otava, and time it.

    python -m tools.simulate                      # the table on stdout (500 histories per row)
    python -m tools.simulate --write docs/detection.md   # ... and into the file, between its markers
    python -m tools.simulate --speed              # 1,000 histories x 500 commits, wall time
    python -m tools.simulate --bound --write docs/detection.md   # the oracle bound (tools.lib.bound)

Rows: the simulated noise grid of ``tools.lib.simulate.GRID`` (each with its no-step twin) and the
repository's real CPU and H100 series (``--results``) with a 1.3x step planted (every plant, and the
plants above each series' noise floor). Cells: found within one commit / exact commit / false-flag %,
per history. Otava runs under ``--otava-python``
(default ``.venv-otava/bin/python``: ``python3.11 -m venv .venv-otava && .venv-otava/bin/pip install
apache-otava==0.8.0``); without it its column says unavailable.

``--bound``: what oracle tests that know the noise (and, for the ceiling, the shapes) detect of the
1.1x steps at 2 % offsets when at most 1-16.5 % of 10 %-drift histories may be flagged
(``tools.lib.bound``; 4,000 histories per kind unless ``--trials``), written between the file's
bound markers.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from tools import cli
from tools.lib import bound
from tools.lib.detect import detect_steps
from tools.lib.errors import ToolError
from tools.lib.evaluate import DEFAULT_OTAVA_PYTHON, evaluate, markdown_table
from tools.lib.files import write_text_atomic
from tools.lib.simulate import Scenario, simulate

BEGIN, END = "<!-- evaluation:begin -->", "<!-- evaluation:end -->"
BOUND_BEGIN, BOUND_END = "<!-- bound:begin -->", "<!-- bound:end -->"


def measure_speed(benchmarks: int, commits: int, seed: int) -> str:
    """Wall time of detect_steps over ``benchmarks`` quick-profile histories (10 % with a 1.3x step)."""
    rng = np.random.default_rng(seed)
    names = [f"c{i:04d}" for i in range(commits)]
    quiet = Scenario("speed", offset_cv=0.03, commits=commits, first_step=commits // 2, last_step=commits // 2)
    stepped = Scenario("speed", offset_cv=0.03, step=1.3, commits=commits, first_step=commits // 2,
                       last_step=commits // 2)
    histories = [simulate(stepped if b % 10 == 0 else quiet, rng).samples for b in range(benchmarks)]
    start, start_cpu = time.perf_counter(), time.process_time()
    flagged = sum(bool(detect_steps(names, h)) for h in histories)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return (f"{benchmarks} benchmarks x {commits} commits (1-3 samples each): {elapsed:.1f} s wall, {cpu:.1f} s CPU "
            f"({1000 * cpu / benchmarks:.1f} ms per benchmark, one process); {flagged} flagged, "
            f"{len(range(0, benchmarks, 10))} with a planted 1.3x step")


def replace_between_markers(text: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    if begin not in text or end not in text or text.index(begin) > text.index(end):
        raise ToolError(f"the file has no '{begin}' ... '{end}' block to replace")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def check_markers(path: str, begin: str, end: str) -> None:
    """Refuse a file without the block before the work that would fill it."""
    with open(path, encoding="utf-8") as fh:
        replace_between_markers(fh.read(), "", begin, end)


def write_block(path: str, block: str, begin: str, end: str) -> None:
    """Replace the block between ``begin`` and ``end`` in ``path`` (atomically)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    write_text_atomic(path, replace_between_markers(text, block, begin, end))
    print(f"wrote the table into {path}", file=sys.stderr)


def rates(text: str) -> list[float]:
    """Comma-separated false-flag targets (fractions, e.g. 0.01,0.02); the range is checked by the bound."""
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a number") from None
    return values


def run_bound(trials: int, seed: int, drift_false: list[float], const_false: float) -> str:
    """The bound's Markdown block: the command, the frontier table."""
    start = time.perf_counter()
    result = bound.frontier(trials, seed, drift_false, const_false)
    seconds = time.perf_counter() - start
    targets = ",".join(f"{r:g}" for r in drift_false)
    command = f"python -m tools.simulate --bound --trials {trials} --seed {seed}" + (
        "" if tuple(drift_false) == bound.DRIFT_FALSE else f" --drift-false {targets}") + (
        "" if const_false == bound.CONST_FALSE else f" --const-false {const_false:g}")
    return (f"`{command}` ({seconds:.0f} s; {trials} histories of each kind, and per slope). Cells: 1.1x steps "
            f"detected / found within one commit (drift histories flagged, no-step histories flagged), in %; "
            f"each GLRT's threshold also flags at most {100 * const_false:g} % of no-step histories.\n\n"
            + bound.markdown_table(result, drift_false))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=cli.positive_int, default=None,
                        help=f"histories per row (default: 500; with --bound {bound.BOUND_TRIALS} per kind)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="results", help="asv results with the real series ('' to skip)")
    parser.add_argument("--plants", type=cli.positive_int, default=8, help="planted steps per real series (default: %(default)s)")
    parser.add_argument("--otava-python", default=DEFAULT_OTAVA_PYTHON,
                        help="interpreter with apache-otava 0.8.0 (default: %(default)s)")
    parser.add_argument("--write", metavar="FILE", help="also write the table into FILE between its markers")
    parser.add_argument("--speed", action="store_true", help="time the detector instead")
    parser.add_argument("--speed-benchmarks", type=cli.positive_int, default=1000)
    parser.add_argument("--speed-commits", type=cli.positive_int, default=500)
    parser.add_argument("--bound", action="store_true", help="the oracle bound on drift against a 1.1x step instead")
    parser.add_argument("--drift-false", type=rates, default=list(bound.DRIFT_FALSE), metavar="RATES",
                        help="with --bound: drift-false targets, fractions (default: %(default)s)")
    parser.add_argument("--const-false", type=float, default=bound.CONST_FALSE, metavar="RATE",
                        help="with --bound: the most no-step histories a GLRT may flag (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.write:
        check_markers(args.write, *((BOUND_BEGIN, BOUND_END) if args.bound else (BEGIN, END)))
    if args.bound:
        block = run_bound(args.trials or bound.BOUND_TRIALS, args.seed, args.drift_false, args.const_false)
        print(block)
        if args.write:
            write_block(args.write, block, BOUND_BEGIN, BOUND_END)
        return 0
    args.trials = args.trials or 500
    if args.speed:
        if args.speed_commits < 2:
            parser.error(f"argument --speed-commits: must be at least 2, got {args.speed_commits}")
        print(measure_speed(args.speed_benchmarks, args.speed_commits, args.seed))
        return 0
    rows, meta = evaluate(args.trials, args.seed, args.otava_python, args.results or None, args.plants,
                          progress=lambda name: print(f"  done: {name}", file=sys.stderr, flush=True))
    otava = f"Otava {meta['otava']}" if meta["otava"] else "Otava unavailable"
    command = (f"python -m tools.simulate --trials {args.trials} --seed {args.seed} --plants {args.plants}"
               + ("" if args.results == "results" else f" --results '{args.results}'"))
    block = (f"`{command}` ({otava}; {meta['seconds']:.0f} s). Cells: found within one commit / exact "
             f"commit / false-flag %, per history ({args.trials} histories per row).\n\n"
             + markdown_table(rows, meta))
    print(block)
    if args.write:
        write_block(args.write, block, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
