"""Evaluate the regression detector against asv's step_detect and Apache Otava, and time it.

    python -m tools.simulate                      # the table on stdout (500 histories per row)
    python -m tools.simulate --write docs/detection.md   # ... and into the file, between its markers
    python -m tools.simulate --speed              # 1,000 histories x 500 commits, wall time

Rows: the simulated noise grid of ``tools.lib.simulate.GRID`` (each with its no-step twin) and the
repository's real CPU and H100 series (``--results``) with a 1.3x step planted (every plant, and the
plants above each series' noise floor). Cells: found within one commit / exact commit / false-flag %,
per history. Otava runs under ``--otava-python``
(default ``.venv-otava/bin/python``: ``python3.11 -m venv .venv-otava && .venv-otava/bin/pip install
apache-otava==0.8.0``); without it its column says unavailable.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from tools import cli
from tools.lib.detect import detect_steps
from tools.lib.errors import ToolError
from tools.lib.evaluate import DEFAULT_OTAVA_PYTHON, evaluate, markdown_table
from tools.lib.files import write_text_atomic
from tools.lib.simulate import Scenario, simulate

BEGIN, END = "<!-- evaluation:begin -->", "<!-- evaluation:end -->"


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


def replace_between_markers(text: str, block: str) -> str:
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise ToolError(f"the file has no '{BEGIN}' ... '{END}' block to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=cli.positive_int, default=500, help="histories per row (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="results", help="asv results with the real series ('' to skip)")
    parser.add_argument("--plants", type=cli.positive_int, default=8, help="planted steps per real series (default: %(default)s)")
    parser.add_argument("--otava-python", default=DEFAULT_OTAVA_PYTHON,
                        help="interpreter with apache-otava 0.8.0 (default: %(default)s)")
    parser.add_argument("--write", metavar="FILE", help="also write the table into FILE between its markers")
    parser.add_argument("--speed", action="store_true", help="time the detector instead")
    parser.add_argument("--speed-benchmarks", type=cli.positive_int, default=1000)
    parser.add_argument("--speed-commits", type=cli.positive_int, default=500)
    args = parser.parse_args(argv)
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
        with open(args.write, encoding="utf-8") as fh:
            text = fh.read()
        write_text_atomic(args.write, replace_between_markers(text, block))
        print(f"wrote the table into {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
