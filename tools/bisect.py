"""Confirmed bisection: find the commit that made a benchmark worse, then confirm it by re-measuring.

1. **Candidate.** When the results already hold the range (``asv run`` / ``make bench``), the
   project's detector (``tools.lib.regressions``) names the step; when it spans commits without
   results, or the results hold nothing, ``asv find`` searches (its output is streamed).
2. **Re-measure, interleaved.** The candidate, its parent and (``--neighbours``, the default) the
   commits either side of them are measured again in one ``asv run`` with ``-a repeat=N -a
   rounds=R --append-samples``: asv interleaves the commits' rounds, each in a fresh process.
3. **Paired test** (``tools.lib.confirm``): round r of a commit against round r of its parent, one-
   sided on the log ratios in the benchmark's direction. Prints exactly one of::

       confirmed: <sha7> <subject> made <benchmark> <factor>x slower (p=<p>)
       not confirmed: the step is within noise (<benchmark> <factor>x, p=<p>)

   ("worse" instead of "slower" for a throughput). Confirmed needs p < --alpha and factor >=
   --min-ratio. The outcome is appended to ``results/confirmations/<machine>.json``, which the
   verdicts (``tools.report``, the badges, the site) read. Exit status 0 for either verdict, 1 when
   something failed.

asv runs with ``--launch-method forkserver`` (asv 0.6's ``find`` ignores the config's launch method;
spawn imports torch again for every parameter set).

Usage: ``python -m tools.bisect FROM..TO BENCHMARK_REGEX [--config asv.conf.json] [--machine M]
[-E ENV] [--repeat 5] [--rounds 8] [--no-neighbours]``
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

from asv.config import Config

from tools import cli
from tools.lib.confirm import Judgement, judge, samples_for
from tools.lib.errors import ToolError
from tools.lib.regressions import higher_is_better, series_steps
from tools.lib.series import load_benchmarks, series_from_results
from tools.lib.verdicts import Confirmation, record_confirmation

FOUND_LINE = re.compile(r"Greatest regression found:\s*([0-9a-f]{7,40})")


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


def asv_command(config: str, machine: str | None, environments: list[str], *words: str) -> list[str]:
    """``python -m asv <words>`` for ``config``, forkserver launches (asv find ignores the config's)."""
    cmd = [sys.executable, "-m", "asv", *words, "--config", config, "--launch-method", "forkserver"]
    if machine:
        cmd += ["--machine", machine]
    for env in environments:
        cmd += ["-E", env]
    return cmd


def stream(cmd: list[str], step: str, tolerate: bool = False) -> str:
    """Run ``cmd``, echoing its output line by line with a step prefix; return the whole output.
    ``tolerate``: a non-zero exit (asv run's when some benchmark failed in some round) is noted,
    not raised: the samples that were measured are judged, and too few is an error there."""
    print(f"[{step}] $ {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        print(f"[{step}] {line}", end="", flush=True)
    if proc.wait() != 0:
        if not tolerate:
            raise ToolError(f"`{' '.join(cmd[1:4])} ...` failed with exit status {proc.returncode}")
        print(f"[{step}] note: asv exited with status {proc.returncode} (a benchmark failed somewhere above)", flush=True)
    return "".join(lines)


def run_find(asv: list[str], range_spec: str, benchmark: str, repo: str) -> str:
    """Full hash of the commit ``asv find`` names in ``range_spec``. ``--skip-save``: asv find would
    otherwise replace the stored result of every commit it visits with its own single measurement,
    recorded samples and interleaved rounds lost."""
    output = stream([*asv[:3], "find", range_spec, benchmark, "--skip-save", *asv[3:]], "1/3 asv find")
    match = FOUND_LINE.search(output)
    if not match:
        raise ToolError("asv find did not name a commit (no 'Greatest regression found' line)")
    return git(repo, "rev-parse", "--verify", match.group(1) + "^{commit}")


def remeasure(asv: list[str], commits: list[str], benchmark: str, repeat: int, rounds: int) -> None:
    """Append ``repeat x rounds`` samples per commit. All commits go in one run, so asv interleaves
    their rounds (A B, B A, ...): a slow spell of a shared machine then hits both sides alike."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(commits) + "\n")
    try:
        stream([*asv[:3], "run", f"HASHFILE:{fh.name}", "--bench", benchmark, "-a", f"repeat={repeat}",
                "-a", f"rounds={rounds}", "--interleave-rounds", "--append-samples", "--record-samples", *asv[3:]],
               "2/3 asv run", tolerate=True)
    finally:
        os.unlink(fh.name)


def default_machine() -> str | None:
    """The machine asv uses without ``--machine``: the only one in ~/.asv-machine.json, else None."""
    path = os.path.expanduser("~/.asv-machine.json")
    try:
        with open(path, encoding="utf-8") as fh:
            names = [k for k in json.load(fh) if k != "version"]
    except (OSError, ValueError, AttributeError):
        return None
    return names[0] if len(names) == 1 else None


def _label(benchmark: str, params: dict[str, str]) -> str:
    return f"{benchmark}({', '.join(params.values())})" if params else benchmark


def _asv_value(value: str) -> str:
    """A parameter value as asv writes it in a benchmark's name: the value's repr (strings quoted)."""
    if value in ("True", "False", "None"):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return repr(value)


def label_matches(pattern: str, benchmark: str, params: dict[str, str]) -> bool:
    """Whether a benchmark regex selects this parameter set, as ``asv run -b`` / ``asv find`` match it
    (``name('ImprovedDilatedAttention', 1024, ...)``: string values quoted) or against the unquoted label."""
    asv_label = f"{benchmark}({', '.join(_asv_value(v) for v in params.values())})" if params else benchmark
    return bool(re.search(pattern, asv_label) or re.search(pattern, _label(benchmark, params))
                or benchmark == pattern)


def detector_candidate(results_dir: str, repo: str, in_range: list[str], machine: str | None,
                       pattern: str) -> tuple[str, str, str] | None:
    """(last good, first bad, label) of the most significant slowdown the detector finds in the
    stored results of the range's commits (and the commit before it), or None."""
    if not os.path.isdir(results_dir):
        return None
    wanted = set(in_range)
    try:
        all_series = series_from_results(results_dir, repo)
    except ToolError:
        return None
    best = None
    for series in all_series:
        label = _label(series.benchmark, series.params)
        if (machine and series.machine != machine) or not label_matches(pattern, series.benchmark, series.params):
            continue
        series.points = [p for p in series.points if p.commit in wanted]
        points, steps = series_steps(series)
        for step in steps:
            if step.direction == "slower" and (best is None or (step.p_value or 1.0) < best[0]):
                best = (step.p_value or 1.0, points[step.index - 1].commit, points[step.index].commit, label)
    return None if best is None else best[1:]


def first_parent_chain(repo: str, range_spec: str) -> list[str]:
    """The range's commits oldest first, with the commit before the range in front."""
    newest_first = check_range(repo, range_spec)
    oldest = newest_first[-1]
    before = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "-q", oldest + "^1"],
                            capture_output=True, text=True).stdout.strip()
    return ([before] if before else []) + newest_first[::-1]


def params_of(label: str) -> tuple[str, tuple[str, ...]]:
    """("bench.Class.name", ("ImprovedDilatedAttention", "16384")) from a label as samples_for makes it."""
    if "(" not in label:
        return label, ()
    name, inner = label.split("(", 1)
    return name, tuple(v.strip().strip("'") for v in inner.rstrip(")").split(", "))


def confirm(asv: list[str], repo: str, results_dir: str, chain: list[str], candidate: str, benchmark: str,
            machine: str | None, repeat: int, rounds: int, alpha: float, min_ratio: float,
            neighbours: bool) -> tuple[str, str, Judgement]:
    """Re-measure ``candidate``, its parent and (``neighbours``) one commit either side in one
    interleaved run; (commit, parent, judgement) of the most significant adjacent pair."""
    parent = git(repo, "rev-parse", "--verify", candidate + "^1^{commit}")
    commits = [parent, candidate]
    if neighbours and candidate in chain:
        at = chain.index(candidate)
        if at >= 2 and chain[at - 1] == parent:
            commits.insert(0, chain[at - 2])
        if at + 1 < len(chain):
            commits.append(chain[at + 1])
    remeasure(asv, commits, benchmark, repeat, rounds)
    print(f"[3/3] paired test, round against round, on {len(commits) - 1} adjacent pair(s)", flush=True)
    units = {name: d.get("unit", "") for name, d in load_benchmarks(results_dir).items()}
    samples = {c: samples_for(results_dir, c, machine, benchmark) for c in commits}
    flipped = frozenset(label for c in commits for label in samples[c]
                        if higher_is_better(units.get(params_of(label)[0], "")))
    judged = []
    for older, newer in zip(commits, commits[1:]):
        try:
            judged.append((newer, older, judge(samples[older], samples[newer], repeat, rounds, alpha, min_ratio,
                                               flipped)))
        except ToolError:
            if newer == candidate:
                raise
    # The candidate's own pair unless a neighbour's is confirmed and more significant.
    own = next(j for j in judged if j[0] == candidate)
    better = [j for j in judged if j[2].confirmed and (not own[2].confirmed or j[2].p_value < own[2].p_value)]
    return min(better, key=lambda j: j[2].p_value) if better else own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bisect", description=__doc__.splitlines()[0])
    parser.add_argument("range", help="commits to search, FROM..TO (FROM itself is not searched, as in git)")
    parser.add_argument("benchmark", type=cli.regex, help="benchmark name or regex, as asv find takes it")
    parser.add_argument("--config", default="asv.conf.json", help="asv config (default: %(default)s)")
    parser.add_argument("--machine", type=cli.machine_name, help="asv machine name (passed to asv)")
    parser.add_argument("-E", "--environment", action="append", default=[], help="asv environment (passed to asv)")
    parser.add_argument("--repeat", type=cli.positive_int, default=5,
                        help="samples per round when confirming (default: %(default)s)")
    parser.add_argument("--rounds", type=cli.positive_int, default=8,
                        help="interleaved rounds per commit when confirming, 3 or more (default: %(default)s)")
    parser.add_argument("--alpha", type=cli.probability, default=0.01, help="significance level (default: %(default)s)")
    parser.add_argument("--min-ratio", type=cli.ratio_at_least_one, default=1.05,
                        help="smallest slowdown that counts as a step (default: %(default)s)")
    parser.add_argument("--no-neighbours", dest="neighbours", action="store_false",
                        help="re-measure only the candidate and its parent (default: also one commit either side)")
    parser.add_argument("--asv-find", action="store_true",
                        help="always search with asv find, even when the results hold the range")
    args = parser.parse_args(argv)
    check_range_form(args.range)
    if args.rounds < 3:
        parser.error(f"argument --rounds: a paired test needs 3 or more rounds, got {args.rounds}")
    if not os.path.isfile(args.config):
        raise ToolError(f"asv config {args.config} not found")
    config = os.path.abspath(args.config)
    try:
        conf = Config.load(config)
    except Exception as exc:  # asv reports a bad config as json5's, asv's or a plain Python error
        raise ToolError(f"asv config {os.path.relpath(config)} is not readable "
                        f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None
    conf_dir = os.path.dirname(config)
    repo = os.path.join(conf_dir, conf.repo)
    results_dir = os.path.join(conf_dir, conf.results_dir)
    machine = args.machine or default_machine()
    asv = asv_command(config, args.machine, args.environment)

    chain = first_parent_chain(repo, args.range)
    found = None if args.asv_find else detector_candidate(results_dir, repo, chain, machine, args.benchmark)
    if found is None:
        candidate = run_find(asv, args.range, args.benchmark, repo)
    else:
        good, bad, label = found
        print(f"[1/3] the detector names {bad[:8]} ({label} got slower after {good[:8]})", flush=True)
        parent = git(repo, "rev-parse", "--verify", bad + "^1^{commit}")
        candidate = bad if parent == good else run_find(asv, f"{good}..{bad}", args.benchmark, repo)
    named, parent, verdict = confirm(asv, repo, results_dir, chain, candidate, args.benchmark, machine,
                                     args.repeat, args.rounds, args.alpha, args.min_ratio, args.neighbours)
    name, params = params_of(verdict.label)
    if machine:
        record_confirmation(results_dir, machine, Confirmation(name, params, named, parent, verdict.factor,
                                                               verdict.p_value, verdict.confirmed, verdict.rounds,
                                                               candidate if candidate != named else None))
    units = {n: d.get("unit", "") for n, d in load_benchmarks(results_dir).items()}
    worse = "worse" if higher_is_better(units.get(name, "")) else "slower"
    if verdict.confirmed:
        subject = git(repo, "log", "-1", "--format=%s", named)
        print(f"confirmed: {named[:7]} {subject} made {verdict.label} {verdict.factor:.2f}x {worse} "
              f"(p={verdict.p_value:.2g})")
    else:
        print(f"not confirmed: the step is within noise ({verdict.label} {verdict.factor:.2f}x, "
              f"p={verdict.p_value:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
