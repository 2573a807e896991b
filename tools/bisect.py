"""Confirmed bisection: ``asv find`` names a commit, then a rank test on more samples confirms it.

1. ``asv find <range> <benchmark>`` (asv's own adaptive search; its output is streamed).
2. The named commit and its first parent are measured again, ``-a repeat=N -a rounds=R`` (N x R
   samples each), appended to the results (``asv run HASHFILE:... --append-samples``); asv interleaves
   the two commits' rounds.
3. A one-sided Mann-Whitney U test (scipy) on the two commits' per-round medians (a round is one
   process; samples within it are not independent). Prints exactly one of::

       confirmed: <sha7> <subject> made <benchmark> <ratio>x slower (p=<p>)
       not confirmed: the step is within noise (<benchmark> <ratio>x, p=<p>)

   ``ratio`` is the median of the named commit's new samples / the parent's. Confirmed needs p < --alpha and
   ratio >= --min-ratio. Exit status 0 for either verdict, 1 when something failed.

Usage: ``python -m tools.bisect FROM..TO BENCHMARK_REGEX [--config asv.conf.json] [--machine M]
[-E ENV] [--repeat 5] [--rounds 8]``
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from asv.config import Config
from scipy.stats import mannwhitneyu

from tools import cli
from tools.lib.errors import ToolError
from tools.lib.series import iter_results_checked

FOUND_LINE = re.compile(r"Greatest regression found:\s*([0-9a-f]{7,40})")


@dataclass
class Verdict:
    benchmark: str  # name, with "(params)" for one parameter combination
    ratio: float
    p_value: float
    confirmed: bool


def git(repo: str, *args: str) -> str:
    done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolError(f"git {' '.join(args)}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
    return done.stdout.strip()


def check_range_form(range_spec: str) -> None:
    """ToolError unless ``range_spec`` reads FROM..TO (two revisions, neither an option)."""
    ends = range_spec.split("..")
    if len(ends) != 2 or not all(ends) or "..." in range_spec or any(e.startswith(("^", "-")) for e in ends):
        raise ToolError(f"commit range {range_spec!r} is not FROM..TO (e.g. HEAD~20..HEAD); "
                        "a single commit would search all of its history")


def check_range(repo: str, range_spec: str) -> list[str]:
    """The commits asv find will search; ToolError if ``range_spec`` is not FROM..TO, does not resolve
    or holds fewer than two commits (a bare commit would be all of history, down to the root)."""
    check_range_form(range_spec)
    if not os.path.isdir(repo):
        raise ToolError(f"repository {repo} (from the asv config's \"repo\") does not exist")
    done = subprocess.run(["git", "-C", repo, "rev-list", "--first-parent", range_spec, "--"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["git rev-list failed"])[0]
        raise ToolError(f"commit range '{range_spec}' does not exist in {repo} ({reason})")
    commits = done.stdout.split()
    if len(commits) < 2:
        raise ToolError(f"commit range '{range_spec}' holds {len(commits)} commit(s); asv find needs 2 or more")
    return commits


def asv_command(args: argparse.Namespace, *words: str) -> list[str]:
    cmd = [sys.executable, "-m", "asv", *words, "--config", args.config]
    if args.machine:
        cmd += ["--machine", args.machine]
    for env in args.environment:
        cmd += ["-E", env]
    return cmd


def stream(cmd: list[str], step: str) -> str:
    """Run ``cmd``, echoing its output line by line with a step prefix; return the whole output."""
    print(f"[{step}] $ {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        print(f"[{step}] {line}", end="", flush=True)
    if proc.wait() != 0:
        raise ToolError(f"`{' '.join(cmd[1:4])} ...` failed with exit status {proc.returncode}")
    return "".join(lines)


def run_find(args: argparse.Namespace, repo: str) -> str:
    """Full hash of the commit ``asv find`` names."""
    output = stream(asv_command(args, "find", args.range, args.benchmark), "1/3 asv find")
    match = FOUND_LINE.search(output)
    if not match:
        raise ToolError("asv find did not name a commit (no 'Greatest regression found' line)")
    return git(repo, "rev-parse", "--verify", match.group(1) + "^{commit}")


def remeasure(args: argparse.Namespace, commits: list[str]) -> None:
    """Append ``repeat x rounds`` samples per commit. Both commits go in one run, so asv interleaves
    their rounds (A B A B ...): a slow spell of a shared machine then hits both sides alike."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(commits) + "\n")
    try:
        stream(asv_command(args, "run", f"HASHFILE:{fh.name}", "--bench", args.benchmark,
                           "-a", f"repeat={args.repeat}", "-a", f"rounds={args.rounds}", "--record-samples", "--append-samples"),
               "2/3 asv run")
    finally:
        os.unlink(fh.name)


def samples_for(results_dir: str, commit: str, machine: str | None, pattern: str) -> dict[str, list[float]]:
    """All samples recorded for ``commit``, per benchmark entry ('name' or 'name(params)') matching."""
    found: dict[str, list[float]] = {}
    for result in iter_results_checked(results_dir, machine):
        if result.commit_hash != commit:
            continue
        for key in result.get_all_result_keys():
            params = result.get_result_params(key)
            combos = list(itertools.product(*params)) if params else [()]
            for combo, samples in zip(combos, result.get_result_samples(key, params)):
                label = f"{key}({', '.join(combo)})" if combo else key
                if samples and (re.search(pattern, label) or key == pattern):
                    # A time of 0, a negative or a non-finite one is no measurement (ratios need > 0).
                    found.setdefault(label, []).extend(s for s in samples if s is not None and 0 < s < math.inf)
    return found


def round_medians(samples: list[float], repeat: int, rounds: int) -> list[float] | None:
    """Medians of the last ``rounds`` blocks of ``repeat`` samples (the ones this run appended:
    asv appends each round's samples after the older ones); None if there are too few samples."""
    ours = samples[-repeat * rounds:]
    if len(ours) < repeat * rounds:
        return None
    return [statistics.median(ours[i:i + repeat]) for i in range(0, len(ours), repeat)]


def judge(before: dict[str, list[float]], after: dict[str, list[float]], repeat: int, rounds: int,
          alpha: float, min_ratio: float) -> Verdict:
    """The most significant slowdown among the entries both commits have samples for.

    The test's unit is a round, not a sample: each round runs in its own process, and samples of
    one process share its state (memory layout, CPU placement, a slow spell of a shared machine),
    so pooled samples would make small process-to-process differences look significant.
    """
    verdicts = []
    for label in sorted(set(before) & set(after)):
        a = round_medians(after[label], repeat, rounds)
        b = round_medians(before[label], repeat, rounds)
        if a is None or b is None:
            continue
        ratio = statistics.median(after[label][-repeat * rounds:]) / \
            statistics.median(before[label][-repeat * rounds:])
        p_value = float(mannwhitneyu(a, b, alternative="greater").pvalue)
        verdicts.append(Verdict(label, ratio, p_value, p_value < alpha and ratio >= min_ratio))
    if not verdicts:
        raise ToolError(f"no benchmark has {repeat * rounds} new samples on both commits; "
                        "nothing to test (did the benchmark fail? see asv's output above)")
    return min(verdicts, key=lambda v: (not v.confirmed, v.p_value, -v.ratio))


def smallest_p(rounds: int) -> float:
    """The smallest one-sided Mann-Whitney p-value ``rounds`` against ``rounds`` values can give."""
    return 1.0 / math.comb(2 * rounds, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bisect", description=__doc__.splitlines()[0])
    parser.add_argument("range", help="commits to search, FROM..TO (FROM itself is not searched, as in git)")
    parser.add_argument("benchmark", type=cli.regex, help="benchmark name or regex, as asv find takes it")
    parser.add_argument("--config", default="asv.conf.json", help="asv config (default: %(default)s)")
    parser.add_argument("--machine", help="asv machine name (passed to asv)")
    parser.add_argument("-E", "--environment", action="append", default=[], help="asv environment (passed to asv)")
    parser.add_argument("--repeat", type=cli.positive_int, default=5, help="samples per round when confirming (default: %(default)s)")
    parser.add_argument("--rounds", type=cli.positive_int, default=8,
                        help="interleaved rounds per commit when confirming (default: %(default)s)")
    parser.add_argument("--alpha", type=cli.probability, default=0.01, help="significance level (default: %(default)s)")
    parser.add_argument("--min-ratio", type=cli.ratio_at_least_one, default=1.05,
                        help="smallest slowdown that counts as a step (default: %(default)s)")
    args = parser.parse_args(argv)
    check_range_form(args.range)
    if smallest_p(args.rounds) >= args.alpha:
        parser.error(f"--rounds {args.rounds} can never reach p < {args.alpha} (the test counts rounds); "
                     f"use more rounds")
    if not os.path.isfile(args.config):
        raise ToolError(f"asv config {args.config} not found")
    args.config = os.path.abspath(args.config)
    try:
        conf = Config.load(args.config)
    except Exception as exc:  # asv reports a bad config as json5's, asv's or a plain Python error
        raise ToolError(f"asv config {os.path.relpath(args.config)} is not readable "
                        f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None
    conf_dir = os.path.dirname(args.config)
    repo = os.path.join(conf_dir, conf.repo)
    results_dir = os.path.join(conf_dir, conf.results_dir)

    check_range(repo, args.range)
    named = run_find(args, repo)
    parent = git(repo, "rev-parse", "--verify", named + "^1^{commit}")
    remeasure(args, [parent, named])
    print("[3/3] Mann-Whitney U test on the named commit and its parent", flush=True)
    verdict = judge(samples_for(results_dir, parent, args.machine, args.benchmark),
                    samples_for(results_dir, named, args.machine, args.benchmark),
                    args.repeat, args.rounds, args.alpha, args.min_ratio)
    if verdict.confirmed:
        subject = git(repo, "log", "-1", "--format=%s", named)
        print(f"confirmed: {named[:7]} {subject} made {verdict.benchmark} {verdict.ratio:.2f}x slower "
              f"(p={verdict.p_value:.2g})")
    else:
        print(f"not confirmed: the step is within noise ({verdict.benchmark} {verdict.ratio:.2f}x, "
              f"p={verdict.p_value:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
