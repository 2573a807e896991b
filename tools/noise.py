"""Noise floor of every benchmark: one commit measured in several separate asv runs.

``measure`` runs ``asv run --record-samples COMMIT^!`` RUNS times (each into its own temporary
results folder, so nothing in ``results/`` is touched unless asked), keeps each run's result file,
then writes the noise file (within-run CV, between-run CV, minimum detectable effect and stability
per parameter set: ``tools/lib/noise.py``) and the two-run table of the first two runs. ``floor``
and ``compare`` do the last two steps from kept result files.

Usage::

    python -m tools.noise measure [--runs 3] [--commit HEAD] [--bench REGEX ...] [--profile quick]
        [--config asv.conf.json] [-E ENV] [--machine NAME] [--keep DIR] [--output FILE]
        [--table FILE] [--into-results] [--benchmark-dir DIR] [--no-floor] [--replace]
    python -m tools.noise floor RUN.json RUN.json ... --output FILE [--profile NAME]
    python -m tools.noise compare RUN1.json RUN2.json [--bench REGEX] [--params REGEX] [--output FILE]
        [--title TEXT]
    python -m tools.noise summary NOISE.json [--output FILE] [--title TEXT]
    python -m tools.noise check [--profile NAME]      # one-line error if this machine cannot run it

Defaults: the noise file ``results/noise/<machine>.json``, the runs' files in
``results/noise/runs/<machine>/``, the table ``results/noise/<machine>-two-runs.md``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Optional

from tools import cli
from tools.lib import noise
from tools.lib.errors import ToolError
from tools.lib.files import check_writable, write_text_atomic


def say(message: str) -> None:
    print(f"[noise] {message}", flush=True)


def check_profile(name: str) -> str:
    """``name`` if the suite knows the profile and this machine can run it; else a ToolError."""
    saved = os.environ.get("ATTNBENCH_PROFILE")
    os.environ["ATTNBENCH_PROFILE"] = "quick"  # importing the suite must not fail on a bad name
    try:
        from benchmarks import common, timing
    finally:
        if saved is None:
            os.environ.pop("ATTNBENCH_PROFILE", None)
        else:
            os.environ["ATTNBENCH_PROFILE"] = saved
    device = common.select_device()
    try:
        profile = common.select_profile(name, device)
    except ValueError:
        raise ToolError(f"unknown profile {name!r}; expected one of full, quick, standard") from None
    if profile.cuda_only or device == "cuda":
        try:
            timing.require_cuda_events()
        except RuntimeError as err:
            raise ToolError(f"profile {name!r} times with CUDA events: {err}") from None
    return name


def resolve_commit(commit: str) -> str:
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolError(f"commit {commit!r} does not exist in this repository")
    return done.stdout.strip()


def default_machine() -> str:
    from tools.machine import collect_facts, machine_name

    return machine_name(collect_facts())


def load_config(path: str) -> dict:
    from asv import util as asv_util

    if not os.path.exists(path):
        raise ToolError(f"asv config {path} not found")
    try:
        return asv_util.load_json(path, js_comments=True)
    except asv_util.UserError as err:
        raise ToolError(f"{path}: not a readable asv config ({err})") from None


def _stream(cmd: list[str], env: dict, prefix: str) -> int:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        print(f"{prefix} {line}", end="", flush=True)
    return proc.wait()


def _refuse_existing(paths: list[str], replace: bool) -> None:
    existing = [p for p in paths if p and os.path.exists(p)]
    if existing and not replace:
        raise ToolError(f"{existing[0]} exists; pass --replace to overwrite it")


def asv_run_once(config: dict, args: argparse.Namespace, sha: str, machine: str, index: int) -> str:
    """One ``asv run`` of ``sha`` into a temporary results folder; the path of its result file
    (moved into a temporary file that the caller keeps or deletes)."""
    with tempfile.TemporaryDirectory(prefix="attnbench-noise-") as tmp:
        conf = dict(config, results_dir=os.path.join(tmp, "results"), html_dir=os.path.join(tmp, "html"))
        if args.benchmark_dir:
            conf["benchmark_dir"] = os.path.abspath(args.benchmark_dir)
        # asv changes into its config's folder and reads every path (and the plugin) from there:
        # the temporary config sits beside the real one, for the run's duration only.
        conf_path = os.path.join(os.path.dirname(os.path.abspath(args.config)),
                                 f".asv-noise-{os.getpid()}.json")
        with open(conf_path, "w", encoding="utf-8") as fh:
            json.dump(conf, fh)
        cmd = [sys.executable, "-m", "asv", "run", "--config", conf_path, "--machine", machine,
               "--record-samples", "--show-stderr", f"{sha}^!"]
        for regex in args.bench:
            cmd += ["--bench", regex]
        for env_name in args.environment:
            cmd += ["-E", env_name]
        env = dict(os.environ, ATTNBENCH_PROFILE=args.profile, PYTHONUNBUFFERED="1")
        prefix = f"[noise run {index}/{args.runs}]"
        say(f"run {index}/{args.runs}: {shlex.join(cmd[1:])}")
        started = time.monotonic()
        try:
            status = _stream(cmd, env, prefix)
        finally:
            os.unlink(conf_path)
        found = [p for p in glob.glob(os.path.join(tmp, "results", machine, "*.json"))
                 if os.path.basename(p) != "machine.json"]
        # asv exits 2 when some benchmark failed: the run still counts (the set reads as unstable).
        if status not in (0, 2) or len(found) != 1:
            raise ToolError(f"asv run {index}/{args.runs} failed (exit status {status}, "
                            f"{len(found)} result file(s)); its output is above")
        keep = tempfile.NamedTemporaryFile(prefix="noise-run-", suffix=".json", delete=False)
        keep.close()
        shutil.copyfile(found[0], keep.name)
        for extra, target in (("machine.json", ".machine.json"), ("benchmarks.json", ".benchmarks.json")):
            src = (os.path.join(tmp, "results", machine, extra) if extra == "machine.json"
                   else os.path.join(tmp, "results", extra))
            if os.path.exists(src):
                shutil.copyfile(src, keep.name + target)
        _, sets = noise.read_run(keep.name)
        failed = sum(1 for v in sets.values() if v is None)
        say(f"run {index}/{args.runs} done in {time.monotonic() - started:.0f} s: "
            f"{len(sets) - failed} sets measured, {failed} failed")
        return keep.name


def _summary_lines(document: dict) -> list[str]:
    entries = [(name, e) for name, es in document["benchmarks"].items() for e in es]
    mdes = [e["mde"] for _, e in entries if e["mde"] is not None]
    unstable = [f"{name}({', '.join(e['params'])})" for name, e in entries if not e["stable"]]
    lines = [f"{len(entries)} sets; minimum detectable effect <= 5% for "
             f"{sum(m <= 0.05 for m in mdes)}/{len(mdes)}, <= 10% for {sum(m <= 0.10 for m in mdes)}/{len(mdes)}"]
    if unstable:
        lines.append(f"{len(unstable)} unstable (failed in a run, e.g. timing never stabilised): "
                     + "; ".join(unstable[:10]) + (" ..." if len(unstable) > 10 else ""))
    return lines


def floor_from_files(paths: list[str], profile: str) -> dict:
    headers, runs = zip(*(noise.read_run(p) for p in paths))
    commits = {h["commit"] for h in headers}
    machines = {h["machine"] for h in headers}
    if len(commits) != 1 or len(machines) != 1:
        raise ToolError(f"the runs must be of one commit on one machine; got commits "
                        f"{sorted(c[:8] for c in commits)} and machines {sorted(map(str, machines))}")
    stamps = [h["measured"] for h in headers if h["measured"] is not None]
    date = (dt.datetime.fromtimestamp(max(stamps) / 1e3, dt.timezone.utc) if stamps
            else dt.datetime.now(dt.timezone.utc))
    return noise.noise_document(list(runs), machines.pop(), commits.pop(),
                                date.isoformat(timespec="seconds"), profile, noise.detector_settings())


def table_from_files(first: str, second: str, bench: list[str], title: Optional[str],
                     command: str, params: Optional[str] = None) -> tuple[str, dict]:
    (h1, a), (h2, b) = noise.read_run(first), noise.read_run(second)
    if h1["commit"] != h2["commit"] or h1["machine"] != h2["machine"]:
        raise ToolError(f"{first} and {second} are not the same commit on the same machine")
    patterns = [re.compile(r) for r in bench]
    try:
        wanted = re.compile(params) if params else None
    except re.error as err:
        raise ToolError(f"--params {params!r} is not a regular expression ({err})") from None
    rows = [r for r in noise.two_run_rows(a, b)
            if (not patterns or any(p.search(r.name) for p in patterns))
            and (wanted is None or wanted.search(", ".join(r.params)))]
    notes = [f"Machine `{h1['machine']}`, commit `{h1['commit']}`; two separate `asv run "
             f"--record-samples` runs: `{os.path.basename(first)}`, `{os.path.basename(second)}`.",
             f"Made by `{command}`."]
    text = noise.two_run_markdown(rows, title or f"Two runs of one commit on {h1['machine']}", notes)
    return text, noise.two_run_summary(rows)


def _write(path: Optional[str], text: str) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    check_writable(path, make_parents=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text_atomic(path, text)
    say(f"wrote {path}")


def cmd_measure(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise ToolError(f"--runs must be >= 1, got {args.runs}")
    check_profile(args.profile)
    config = load_config(args.config)
    sha = resolve_commit(args.commit)
    machine = args.machine or default_machine()
    results_dir = config.get("results_dir", "results")
    keep_dir = args.keep or os.path.join(results_dir, "noise", "runs", machine)
    output = None if args.no_floor else (args.output or noise.noise_path(results_dir, machine))
    table = args.table or (os.path.join(results_dir, "noise", f"{machine}-two-runs.md")
                           if args.runs >= 2 else None)
    if args.table and args.runs < 2:
        raise ToolError(f"--table needs two runs or more, got --runs {args.runs}")
    kept = [os.path.join(keep_dir, f"{sha[:8]}-run{i}.json") for i in range(1, args.runs + 1)]
    _refuse_existing([*kept, output, table], args.replace)
    say(f"{args.runs} run(s) of {sha[:8]} on {machine}, profile {args.profile}, "
        f"benchmarks {args.bench or 'all'}")
    started = time.monotonic()
    os.makedirs(keep_dir, exist_ok=True)
    for index, target in enumerate(kept, start=1):
        path = asv_run_once(config, args, sha, machine, index)
        try:
            shutil.copyfile(path, target)
            if args.into_results and index == args.runs:
                _into_results(path, results_dir, machine, args.replace)
        finally:
            for leftover in (path, path + ".machine.json", path + ".benchmarks.json"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
        say(f"kept {target}")
    say(f"{args.runs} run(s) took {time.monotonic() - started:.0f} s")
    command = "python -m tools.noise " + shlex.join(args.argv)
    if output:
        document = floor_from_files(kept, args.profile)
        noise.write_noise_file(output, document)
        say(f"wrote {output}")
        for line in _summary_lines(document):
            say(line)
    if table:
        text, summary = table_from_files(kept[0], kept[1], [], args.title, command)
        _write(table, text)
        say(f"two runs: {summary['count']} sets, median difference {summary['median']:.2%}, "
            f"p95 {summary['p95']:.2%}, worst {summary['max']:.2%}")
    return 0


def _into_results(path: str, results_dir: str, machine: str, replace: bool) -> None:
    """The last run's result file (with its samples) where asv keeps results, with its machine.json
    and, as ``benchmarks-<machine>.saved``, the benchmark definitions it ran."""
    target_dir = os.path.join(results_dir, machine)
    target = os.path.join(target_dir, os.path.basename(_result_name(path)))
    _refuse_existing([target], replace)
    os.makedirs(target_dir, exist_ok=True)
    shutil.copyfile(path, target)
    say(f"kept the last run in {target}")
    if os.path.exists(path + ".machine.json") and not os.path.exists(os.path.join(target_dir, "machine.json")):
        shutil.copyfile(path + ".machine.json", os.path.join(target_dir, "machine.json"))
    saved = os.path.join(results_dir, f"benchmarks-{machine}.saved")
    if os.path.exists(path + ".benchmarks.json") and (replace or not os.path.exists(saved)):
        shutil.copyfile(path + ".benchmarks.json", saved)


def _result_name(path: str) -> str:
    """asv's file name for a result: <commit[:8]>-<env name>.json."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return f"{data['commit_hash'][:8]}-{data['env_name']}.json"


def cmd_floor(args: argparse.Namespace) -> int:
    check_profile(args.profile)
    _refuse_existing([args.output], args.replace)
    check_writable(args.output, make_parents=True)
    document = floor_from_files(args.runs, args.profile)
    noise.write_noise_file(args.output, document)
    say(f"wrote {args.output}")
    for line in _summary_lines(document):
        say(line)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    command = "python -m tools.noise " + shlex.join(args.argv)
    text, _ = table_from_files(args.first, args.second, args.bench, args.title, command, args.params)
    _write(args.output, text)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    try:
        with open(args.noise_file, encoding="utf-8") as fh:
            document = json.load(fh)
        text = noise.floor_markdown(document, args.title or f"Noise floor on {document['machine']}")
    except (OSError, ValueError) as err:
        raise ToolError(f"{args.noise_file}: not a readable noise file ({err})") from None
    except (KeyError, TypeError, AttributeError) as err:
        raise ToolError(f"{args.noise_file}: not a noise file ({type(err).__name__}: {err})") from None
    _write(args.output, text)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    check_profile(args.profile)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m tools.noise", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    profile_default = os.environ.get("ATTNBENCH_PROFILE", "quick")

    m = sub.add_parser("measure", help="run asv RUNS times at one commit; write the noise file and two-run table")
    m.add_argument("--runs", type=cli.positive_int, default=3, help="separate asv runs (default: %(default)s)")
    m.add_argument("--commit", default="HEAD", help="commit to measure (default: %(default)s)")
    m.add_argument("--bench", action="append", default=[], type=cli.regex,
                   help="asv --bench regex (repeatable; default: all)")
    m.add_argument("--profile", default=profile_default, help="ATTNBENCH_PROFILE (default: %(default)s)")
    m.add_argument("--config", default="asv.conf.json", help="asv config (default: %(default)s)")
    m.add_argument("-E", "--environment", action="append", default=[], help="asv environment (passed to asv)")
    m.add_argument("--machine", help="asv machine name (default: python -m tools.machine's name)")
    m.add_argument("--keep", help="folder for the runs' result files (default: results/noise/runs/<machine>)")
    m.add_argument("--output", help="noise file (default: results/noise/<machine>.json)")
    m.add_argument("--no-floor", action="store_true", help="write no noise file (e.g. measuring an old timing)")
    m.add_argument("--table", help="two-run table (default: results/noise/<machine>-two-runs.md)")
    m.add_argument("--title", help="the table's title")
    m.add_argument("--benchmark-dir", help="benchmark suite to run instead of the config's (e.g. an old one)")
    m.add_argument("--into-results", action="store_true",
                   help="also keep the last run's result file in results/<machine>/")
    m.add_argument("--replace", action="store_true", help="overwrite existing output files")
    m.set_defaults(handler=cmd_measure)

    f = sub.add_parser("floor", help="the noise file from kept result files of one commit")
    f.add_argument("runs", nargs="+", help="asv result files, one per run")
    f.add_argument("--output", required=True, help="noise file to write")
    f.add_argument("--profile", default=profile_default, help="profile the runs used (default: %(default)s)")
    f.add_argument("--replace", action="store_true", help="overwrite an existing noise file")
    f.set_defaults(handler=cmd_floor)

    c = sub.add_parser("compare", help="two-run table (markdown) of two result files of one commit")
    c.add_argument("first")
    c.add_argument("second")
    c.add_argument("--bench", action="append", default=[], type=cli.regex, help="only benchmarks matching (repeatable)")
    c.add_argument("--params", help="only sets whose asv param strings, joined by ', ', match this regex")
    c.add_argument("--output", help="write here instead of stdout")
    c.add_argument("--title", help="the table's title")
    c.set_defaults(handler=cmd_compare)

    s = sub.add_parser("summary", help="per-benchmark table (markdown) of a noise file")
    s.add_argument("noise_file")
    s.add_argument("--output", help="write here instead of stdout")
    s.add_argument("--title", help="the table's title")
    s.set_defaults(handler=cmd_summary)

    k = sub.add_parser("check", help="exit 0 if this machine can run the profile, else a one-line error")
    k.add_argument("--profile", default=profile_default, help="profile to check (default: %(default)s)")
    k.set_defaults(handler=cmd_check)

    args = parser.parse_args(argv)
    args.argv = argv
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(cli.run(main))
