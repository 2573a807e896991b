"""Planted-regression trials: does the report flag, and the confirmed bisection name, a real slowdown?

Each trial builds a throwaway repository from this project's tracked files with ``--commits``
commits; in one of them (chosen at random, never the first two or the last two) the forward pass of
``ImprovedDilatedAttention`` busy-waits until it has taken ``--factor`` times as long (a factor
of 1.0: no plant, a history without a change). Then, as a user would on a fresh clone:

1. ``python -m tools.machine`` and ``asv run`` (quick profile) over every commit as ``make bench``
   runs a range (samples recorded, rounds interleaved), the ``TimeForward.time_forward`` benchmark
   of ``ImprovedDilatedAttention`` at 2048 tokens only;
2. ``python -m tools.report --format json``: flagged = a regression of that benchmark whose first
   bad commit is the planted one (for a factor of 1.0: any regression);
3. ``python -m tools.bisect FIRST..LAST``: confirmed = the "confirmed:" line names the planted
   commit (for 1.0: any "confirmed:" line is a false confirmation).

One JSON line per trial on stdout and in ``--output`` (appended), then a summary. CPU-heavy: 3-5
minutes per trial on the 2-core machine (one parameter set; longer when other jobs share it).

    python scripts/planted_trials.py --factor 1.3 --factor 1.15 --factor 1.0 --trials 5 --output trials.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.lib.planted import Plant, bench_history, make_history  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
BENCH = "bench_time.TimeForward.time_forward"
# One parameter set (asv matches -b against "name('ImprovedDilatedAttention', 2048, ...)"): the
# planted slowdown scales every set alike, and one set halves the time of a trial.
BENCH_REGEX = r"bench_time\.TimeForward\.time_forward\('ImprovedDilatedAttention', 2048,"
PLANT = '''

# A regression planted by scripts/planted_trials.py: the forward pass busy-waits until it has taken
# {factor} times as long as it did.
import time as _planted_time

_planted_forward = ImprovedDilatedAttention.forward


def _slowed_forward(self, *args, **kwargs):
    start = _planted_time.perf_counter()
    out = _planted_forward(self, *args, **kwargs)
    until = start + {factor} * (_planted_time.perf_counter() - start)
    while _planted_time.perf_counter() < until:
        pass
    return out


ImprovedDilatedAttention.forward = _slowed_forward
'''


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def trial(factor: float, commits: int, seed: int, env_dir: Path, keep: Path | None) -> dict:
    rng = random.Random(seed)
    plant_at = rng.randint(2, commits - 3) if factor != 1.0 else None
    root = Path(tempfile.mkdtemp(prefix="planted-"))
    repo, home = root / "repo", root / "home"
    repo.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASV_")}
    env.update(HOME=str(home), ATTNBENCH_PROFILE="quick", PYTHONPATH=str(repo))
    started = time.time()
    try:
        return _measure(repo, env, env_dir, commits, plant_at, factor, seed, started, keep)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _measure(repo: Path, env: dict, env_dir: Path, commits: int, plant_at: int | None, factor: float, seed: int,
             started: float, keep: Path | None) -> dict:
    plant = Plant("attention/improved.py", PLANT.format(factor=factor),
                  f"improved: forward pass {factor}x slower (planted)")
    shas = make_history(PROJECT, repo, env_dir, commits, plant_at, plant)
    run([sys.executable, "-m", "tools.machine"], repo, env)
    machine = run([sys.executable, "-m", "tools.machine", "--print-name"], repo, env).stdout.strip()
    # Measured as make bench measures a range. A benchmark that fails at some commit (asv exits 2)
    # leaves a gap in the history, as for a user.
    bench_history(repo, env, machine, shas, BENCH_REGEX)
    report = json.loads(run([sys.executable, "-m", "tools.report", "--results", "results", "--repo", ".",
                             "--format", "json", "--benchmark", BENCH], repo, env).stdout)
    flagged = [r["first_bad"] for r in report["regressions"] if r["params"].get("implementation") == "ImprovedDilatedAttention"]
    if keep:  # the confirmation appends to the results of the commits it re-measures: keep what the report saw
        shutil.copytree(repo / "results", keep / f"trial-{factor}-{seed}" / "before-bisect")
    bisect = run([sys.executable, "-m", "tools.bisect", f"{shas[0]}..{shas[-1]}", BENCH_REGEX, "--machine", machine],
                 repo, env, check=False)
    lines = bisect.stdout.strip().splitlines()
    last = (lines or [""])[-1] if bisect.returncode == 0 else f"error: {bisect.stderr.strip()[-300:]}"
    candidate = next((line for line in lines if line.startswith("[1/3]")), "asv find")
    named = re.match(r"confirmed: ([0-9a-f]{7})", last)
    planted = shas[plant_at] if plant_at is not None else None
    outcome = {
        "factor": factor, "seed": seed, "commits": commits, "planted_at": plant_at,
        "planted": planted[:8] if planted else None,
        "report_flagged": sorted(set(s[:8] for s in flagged)),
        "report_exact": bool(planted and planted in flagged) if planted else not flagged,
        "bisect_candidate": candidate,
        "bisect": last,
        "bisect_exact": bool(planted and named and planted.startswith(named.group(1))) if planted else not named,
        "minutes": round((time.time() - started) / 60, 1),
    }
    if keep:
        kept = keep / f"trial-{factor}-{seed}"
        shutil.copytree(repo / "results", kept, dirs_exist_ok=True)
        (kept / "commits.txt").write_text("\n".join(shas) + "\n")  # oldest first: the order to read them in
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, action="append", help="planted slowdown (1.0: none); repeatable")
    parser.add_argument("--trials", type=int, default=5, help="trials per factor (default: %(default)s)")
    parser.add_argument("--commits", type=int, default=10, help="commits per history (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="append one JSON line per trial here")
    parser.add_argument("--keep-results", type=Path, help="copy each trial's results/ under this folder")
    parser.add_argument("--env-dir", type=Path, help="asv environments to use and keep (default: a temporary "
                        "folder, removed at the end)")
    args = parser.parse_args(argv)
    factors = args.factor or [1.3, 1.15, 1.0]
    if args.commits < 6 or args.trials < 1 or any(f < 1.0 for f in factors):
        parser.error("--commits must be >= 6, --trials >= 1 and every --factor >= 1.0")
    env_dir = args.env_dir or Path(tempfile.mkdtemp(prefix="planted-env-"))
    outcomes = []
    # Trial k of every factor before trial k + 1 of any: a run cut short still covers each factor.
    for k in range(args.trials):
        for factor in factors:
            try:
                outcome = trial(factor, args.commits, args.seed + k, env_dir, args.keep_results)
            except RuntimeError as exc:
                outcome = {"factor": factor, "seed": args.seed + k, "error": str(exc)[-1000:]}
            outcomes.append(outcome)
            line = json.dumps(outcome)
            print(line, flush=True)
            if args.output:
                with open(args.output, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
    print("\n| factor | trials | report flags the planted commit | bisection confirms it | errors |")
    print("|---|---|---|---|---|")
    for factor in factors:
        rows = [o for o in outcomes if o["factor"] == factor]
        done = [o for o in rows if "error" not in o]
        label = "none (no change)" if factor == 1.0 else f"{factor}x"
        what = ("no flag", "no confirmation") if factor == 1.0 else ("exact", "exact")
        print(f"| {label} | {len(rows)} | {sum(o['report_exact'] for o in done)}/{len(done)} {what[0]} | "
              f"{sum(o['bisect_exact'] for o in done)}/{len(done)} {what[1]} | {len(rows) - len(done)} |")
    if not args.env_dir:
        shutil.rmtree(env_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
