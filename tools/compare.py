"""The pull-request gate: measure BASE and HEAD interleaved, fail when a benchmark got worse.

Both commits are benchmarked in one ``asv run`` (``-a repeat=N -a rounds=R --record-samples``,
forkserver launches): asv interleaves their rounds, each in a fresh process. The results go to a
temporary results directory (the project's ``results/`` is not touched, unless ``--keep-results
DIR`` names where to copy them). Every benchmark entry is judged in its own direction (time and
memory: lower is better; throughput and capacity: higher) by the paired round-against-round test
(``tools.lib.compare``). Exit status 1 when any entry regressed by ``--factor`` or more.

Usage: ``python -m tools.compare BASE HEAD [--config asv.conf.json] [--machine M] [-E ENV]
[--bench REGEX] [--factor 1.1] [--rounds 4] [--repeat 3] [--summary FILE] [--json FILE]``
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict

from asv import util as asv_util

from tools import cli
from tools.lib.compare import compare_entries, to_markdown
from tools.lib.confirm import samples_for
from tools.lib.errors import ToolError
from tools.lib.files import write_text_atomic
from tools.lib.regressions import higher_is_better
from tools.lib.series import load_benchmarks


def resolve(repo: str, revision: str) -> str:
    done = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "-q", revision + "^{commit}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolError(f"revision {revision!r} does not exist in {repo}")
    return done.stdout.strip()


def scratch_config(config: str, results_dir: str) -> tuple[str, str]:
    """(a copy of the asv config whose results go to ``results_dir``, the repository path).
    Environments, benchmarks and repository stay where the original config puts them."""
    try:
        conf = asv_util.load_json(config)
    except Exception as exc:  # asv's reader raises its own error types for comments and syntax
        raise ToolError(f"asv config {config} is not readable ({str(exc).strip().splitlines()[0]})") from None
    base = os.path.dirname(config)
    for key, default in (("repo", "."), ("benchmark_dir", "benchmarks"), ("env_dir", "env")):
        value = conf.get(key, default)
        if key != "repo" or "://" not in value:
            conf[key] = os.path.normpath(os.path.join(base, value))
    for key in ("plugins",):
        if key in conf:
            conf[key] = list(conf[key])
    conf["results_dir"] = results_dir
    conf["html_dir"] = os.path.join(results_dir, "html")
    path = os.path.join(results_dir, "asv.conf.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(conf, fh)
    return path, conf["repo"]


def run_both(config: str, base: str, head: str, machine: str | None, environments: list[str], bench: str | None,
             repeat: int, rounds: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(f"{base}\n{head}\n")
    cmd = [sys.executable, "-m", "asv", "run", f"HASHFILE:{fh.name}", "--config", config, "--launch-method",
           "forkserver", "-a", f"repeat={repeat}", "-a", f"rounds={rounds}", "--interleave-rounds", "--record-samples"]
    cmd += ["--machine", machine] if machine else []
    cmd += [word for env in environments for word in ("-E", env)]
    cmd += ["--bench", bench] if bench else []
    print("$ " + " ".join(cmd[1:]), flush=True)
    try:
        done = subprocess.run(cmd, cwd=os.path.dirname(os.path.abspath(config)))
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        raise ToolError(f"asv run failed with exit status {done.returncode} (its output is above)")


def judge_results(results_dir: str, base: str, head: str, bench: str | None, repeat: int, rounds: int,
                  alpha: float, factor: float):
    units_by_name = {name: d.get("unit", "") for name, d in load_benchmarks(results_dir).items()}
    pattern = bench or "."
    before, after = samples_for(results_dir, base, None, pattern), samples_for(results_dir, head, None, pattern)
    units = {label: units_by_name.get(label.split("(", 1)[0], "") for label in {*before, *after}}
    flipped = frozenset(label for label, unit in units.items() if higher_is_better(unit))
    return compare_entries(before, after, units, flipped, repeat, rounds, alpha, factor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare", description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the commit to compare against (e.g. HEAD~1, origin/main)")
    parser.add_argument("head", help="the commit under test (e.g. HEAD)")
    parser.add_argument("--config", default="asv.conf.json", help="asv config (default: %(default)s)")
    parser.add_argument("--machine", type=cli.machine_name, help="asv machine name (passed to asv)")
    parser.add_argument("-E", "--environment", action="append", default=[], help="asv environment (passed to asv)")
    parser.add_argument("--bench", type=cli.regex, help="only benchmarks matching this regex (passed to asv)")
    parser.add_argument("--factor", type=cli.ratio_at_least_one, default=1.10,
                        help="smallest worsening that fails the gate (default: %(default)s)")
    parser.add_argument("--alpha", type=cli.probability, default=0.01,
                        help="family-wise significance level over all entries (default: %(default)s)")
    parser.add_argument("--rounds", type=cli.positive_int, default=6,
                        help="interleaved rounds per commit, 3 or more (default: %(default)s)")
    parser.add_argument("--repeat", type=cli.positive_int, default=3, help="samples per round (default: %(default)s)")
    parser.add_argument("--results", help="judge the samples already in this results directory instead of running asv")
    parser.add_argument("--keep-results", metavar="DIR", help="copy this run's results to DIR (must not exist)")
    parser.add_argument("--summary", metavar="FILE", help="append the Markdown table to FILE (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--json", metavar="FILE", help="write every entry's verdict as JSON to FILE")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error(f"argument --rounds: a paired test needs 3 or more rounds, got {args.rounds}")
    if args.keep_results and os.path.exists(args.keep_results):
        raise ToolError(f"--keep-results {args.keep_results} exists; name a new directory")
    if not os.path.isfile(args.config):
        raise ToolError(f"asv config {args.config} not found")
    config = os.path.abspath(args.config)

    with tempfile.TemporaryDirectory(prefix="attnbench-compare-") as scratch:
        if args.results:
            results_dir = args.results
            repo = os.path.dirname(config)
            base, head = resolve(repo, args.base), resolve(repo, args.head)
        else:
            results_dir = scratch
            scratch_conf, repo = scratch_config(config, scratch)
            base, head = resolve(repo, args.base), resolve(repo, args.head)
            if base == head:
                raise ToolError(f"{args.base} and {args.head} are the same commit ({base[:8]}); nothing to compare")
            run_both(scratch_conf, base, head, args.machine, args.environment, args.bench, args.repeat, args.rounds)
            if args.keep_results:
                shutil.copytree(scratch, args.keep_results, ignore=shutil.ignore_patterns("html", "asv.conf.json"))
        changes = judge_results(results_dir, base, head, args.bench, args.repeat, args.rounds, args.alpha, args.factor)
    text = to_markdown(changes, base, head, args.factor, args.alpha, asv_util.human_value)
    sys.stdout.write(text)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as fh:
            fh.write(text)
    if args.json:
        write_text_atomic(args.json, json.dumps({"base": base, "head": head, "factor": args.factor,
                                                 "alpha": args.alpha, "entries": [asdict(c) for c in changes]},
                                                indent=1) + "\n")
    regressions = [c for c in changes if c.verdict == "regression"]
    if regressions:
        names = ", ".join(c.label for c in regressions[:5]) + (" ..." if len(regressions) > 5 else "")
        print(f"FAILED: {len(regressions)} benchmark(s) regressed by {args.factor:.2f}x or more: {names}")
        return 1
    print(f"passed: no benchmark regressed by {args.factor:.2f}x or more")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
