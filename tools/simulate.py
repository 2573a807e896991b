"""Measure regression detectors on simulated benchmark histories.

Each history has ``--commits`` commits (20) with ``--samples`` samples each (10); from commit
``--step-at`` (12, 0-based: the first slow commit) on, every sample is multiplied by the step
(none, 1.1x, 1.3x, 2x). Both detectors see the same histories: ``detect_steps`` gets every sample,
asv's detector one value per commit (the median, as asv stores it; ``--asv-value`` to change).

    python -m tools.simulate --trials 200 --seed 0
    python -m tools.simulate --speed        # time detect_steps on 1,000 x 500 commits x 10 samples

Printed per noise model and step: "found" = a slowdown reported exactly at the planted commit;
"(+-1)" = a slowdown reported within one commit of it; "false" = any step reported anywhere else
(for "none", the false-flag rate per history; for a planted step, a misplaced or extra step).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tools import cli
from tools.lib.detect import Step, asv_steps, detect_steps
from tools.lib.errors import ToolError

# A noise model draws a (commits, samples) array of multiplicative noise around 1.
NoiseModel = Callable[[np.random.Generator, int, int], np.ndarray]
STEP_SIZES = (1.0, 1.1, 1.3, 2.0)


def lognormal(cv: float) -> NoiseModel:
    """Independent lognormal samples with coefficient of variation ``cv``."""
    sigma = float(np.sqrt(np.log1p(cv * cv)))
    return lambda rng, commits, samples: rng.lognormal(-sigma * sigma / 2, sigma, (commits, samples))


def heavy_tailed(cv: float = 0.05, outlier_rate: float = 0.05) -> NoiseModel:
    """Lognormal ``cv`` plus, with probability ``outlier_rate`` per sample, a 1.5-3x slower outlier
    (a GC pause, another process on the core)."""
    base = lognormal(cv)

    def draw(rng: np.random.Generator, commits: int, samples: int) -> np.ndarray:
        outliers = rng.random((commits, samples)) < outlier_rate
        return base(rng, commits, samples) * np.where(outliers, rng.uniform(1.5, 3.0, (commits, samples)), 1.0)

    return draw


def bimodal(gap: float = 0.08, cv: float = 0.02) -> NoiseModel:
    """Each sample independently in one of two modes ``gap`` apart (50/50), lognormal ``cv`` inside."""
    base = lognormal(cv)
    return lambda rng, commits, samples: base(rng, commits, samples) * np.where(
        rng.random((commits, samples)) < 0.5, 1.0 + gap, 1.0
    )


def commit_offset(offset_cv: float, cv: float = 0.02) -> NoiseModel:
    """Lognormal ``cv`` per sample times one lognormal ``offset_cv`` factor shared by a whole commit's
    run (real asv samples of one commit come from one process on one machine state)."""
    base, offset = lognormal(cv), lognormal(offset_cv)
    return lambda rng, commits, samples: base(rng, commits, samples) * offset(rng, commits, 1)


NOISE_MODELS: dict[str, NoiseModel] = {
    "lognormal 2%": lognormal(0.02),
    "lognormal 5%": lognormal(0.05),
    "lognormal 10%": lognormal(0.10),
    "heavy tail 5% + 5% x1.5-3": heavy_tailed(),
    "bimodal 8% apart, 2%": bimodal(),
    "commit offset 2% + 2%": commit_offset(0.02),
    "commit offset 5% + 2%": commit_offset(0.05),
}


@dataclass
class Tally:
    """Per (noise model, step) counts over trials, for one detector."""

    found: int = 0
    near: int = 0
    false: int = 0

    def add(self, steps: list[Step], step_at: int, planted: bool) -> None:
        slower = [s.index for s in steps if s.direction == "slower"] if planted else []
        self.found += step_at in slower
        self.near += any(abs(index - step_at) <= 1 for index in slower)
        self.false += any(not (planted and s.index == step_at) for s in steps)


def simulate_history(rng: np.random.Generator, noise: NoiseModel, commits: int, samples: int, step_at: int,
                     step: float) -> np.ndarray:
    """(commits, samples) times in ms around 10 ms, every commit from ``step_at`` on multiplied by ``step``."""
    times = 10.0 * noise(rng, commits, samples)
    times[step_at:] *= step
    return times


ASV_VALUES = {
    "median": "the per-commit median, unweighted",
    "mean": "the per-commit mean, unweighted",
    "first": "one sample per commit",
    "publish": "the per-commit median weighted by 2 / CI width, as asv publish does",
}


def asv_publish_weights(times: np.ndarray) -> list[float | None]:
    """Per-commit weights as ``asv publish`` gives them: 2 / width of asv's 99% CI of the median."""
    from asv import _stats
    from asv_runner.statistics import compute_stats

    return [_stats.get_weight(compute_stats(list(row), 1)[1]) for row in times]


def run_table(trials: int, seed: int, commits: int, samples: int, step_at: int, alpha: float,
              asv_value: str) -> list[tuple[str, float, Tally, Tally]]:
    """Both detectors on the same seeded histories; one row per noise model x step size."""
    if not 0 < step_at < commits:
        raise ToolError(f"--step-at must be between 1 and --commits - 1 ({commits - 1}), got {step_at}")
    rng = np.random.default_rng(seed)
    names = [f"c{i:03d}" for i in range(commits)]
    summarise = {"median": np.median, "mean": np.mean, "first": lambda t, axis: t[:, 0], "publish": np.median}[asv_value]
    rows = []
    for model_name, noise in NOISE_MODELS.items():
        for step in STEP_SIZES:
            ours, theirs = Tally(), Tally()
            for _ in range(trials):
                times = simulate_history(rng, noise, commits, samples, step_at, step)
                ours.add(detect_steps(names, times.tolist(), alpha=alpha), step_at, step != 1.0)
                weights = asv_publish_weights(times) if asv_value == "publish" else None
                theirs.add(asv_steps(names, summarise(times, axis=1).tolist(), weights), step_at, step != 1.0)
            rows.append((model_name, step, ours, theirs))
    return rows


def format_table(rows: list[tuple[str, float, Tally, Tally]], trials: int) -> str:
    """Markdown table: detection rate at the planted commit and false-flag rate, both detectors."""
    lines = [
        "| noise model | step | detect_steps found | (+-1) | detect_steps false | asv found | (+-1) | asv false |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def percent(count: int) -> str:
        return f"{100 * count / trials:.1f}%"

    for model_name, step, ours, theirs in rows:
        planted = step != 1.0
        cells = []
        for tally in (ours, theirs):
            cells += [percent(tally.found), percent(tally.near)] if planted else ["-", "-"]
            cells.append(percent(tally.false))
        label = f"{step:g}x" if planted else "none"
        lines.append(f"| {model_name} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure_speed(benchmarks: int, commits: int, samples: int, seed: int) -> str:
    """Wall time of detect_steps over ``benchmarks`` histories (a few with steps), one process."""
    rng = np.random.default_rng(seed)
    names = [f"c{i:04d}" for i in range(commits)]
    histories = []
    for b in range(benchmarks):
        times = simulate_history(rng, lognormal(0.05), commits, samples, commits // 2, 1.3 if b % 10 == 0 else 1.0)
        histories.append(times.tolist())
    start, start_cpu = time.perf_counter(), time.process_time()
    flagged = sum(bool(detect_steps(names, h)) for h in histories)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    planted = len(range(0, benchmarks, 10))
    return (f"{benchmarks} benchmarks x {commits} commits x {samples} samples: {elapsed:.1f} s "
            f"wall, {cpu:.1f} s CPU ({1000 * cpu / benchmarks:.1f} ms CPU per benchmark, one process); {flagged} flagged, "
            f"{planted} with a planted 1.3x step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=cli.positive_int, default=200, help="histories per noise model and step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commits", type=cli.positive_int, default=20)
    parser.add_argument("--samples", type=cli.positive_int, default=10, help="samples per commit")
    parser.add_argument("--step-at", type=int, default=12, help="0-based index of the first slow commit")
    parser.add_argument("--alpha", type=cli.probability, default=0.01, help="detect_steps' family-wise level")
    parser.add_argument("--asv-value", choices=tuple(ASV_VALUES), default="median",
                        help="per-commit value given to asv's detector (first: one sample per commit; "
                             "publish: the median weighted by 2 / CI width, as asv publish does)")
    parser.add_argument("--speed", action="store_true", help="time detect_steps instead of the table")
    parser.add_argument("--speed-benchmarks", type=cli.positive_int, default=1000)
    parser.add_argument("--speed-commits", type=cli.positive_int, default=500)
    args = parser.parse_args(argv)
    if args.commits < 2:
        parser.error(f"argument --commits: must be at least 2, got {args.commits}")
    if not 0 < args.step_at < args.commits:
        parser.error(f"argument --step-at: must be between 1 and --commits - 1 ({args.commits - 1}), "
                     f"got {args.step_at}")
    if args.speed:
        print(measure_speed(args.speed_benchmarks, args.speed_commits, args.samples, args.seed))
        return 0
    rows = run_table(args.trials, args.seed, args.commits, args.samples, args.step_at, args.alpha, args.asv_value)
    print(f"{args.trials} trials, {args.commits} commits x {args.samples} samples, step at commit {args.step_at}, "
          f"alpha {args.alpha}, seed {args.seed}; asv gets {ASV_VALUES[args.asv_value]}")
    print(format_table(rows, args.trials))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
