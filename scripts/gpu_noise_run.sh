#!/usr/bin/env bash
# The noise floor of the GPU time_* benchmarks (full profile) on a GPU box without a package
# registry, and, if the budget allows, the same two-run test with an older suite's timing.
#
# Prepared as for scripts/gpu_asv_run.sh (.whl/ with asv's wheels and .whl/attnbench.bundle whose
# branch main holds COMMIT and BEFORE). On the box, from the repository root:
#   scripts/gpu_noise_run.sh OUTDIR BUDGET_S [COMMIT] [BEFORE]
# 1. `python -m tools.noise measure --runs 2` of COMMIT on bench_time and bench_sdpa's time_*
#    benchmarks: results/noise/<machine>.json, results/noise/<machine>-two-runs.md, both runs'
#    result files in results/noise/runs/<machine>/ and the last one in results/<machine>/;
# 2. with BEFORE (a commit whose benchmarks/ is the old suite) and time left: two runs of COMMIT's
#    TimeForward with BEFORE's benchmarks: results/noise/<machine>-two-runs-before.md and the runs
#    in results/noise/runs/<machine>-before/.
# ONLY_BEFORE=1 skips step 1. Leaves OUTDIR/noise-<machine>.tgz (all of the above) and
# OUTDIR/noise.log.
set -uo pipefail
out=${1:?usage: gpu_noise_run.sh OUTDIR BUDGET_S [COMMIT] [BEFORE]}
budget=${2:?missing BUDGET_S}; commit=${3:-HEAD}; before=${4:-}
start=$(date +%s); log="$out/noise.log"; : > "$log"

source "$(dirname "$0")/gpu_box_checkout.sh"
gpu_box_checkout "$log" || exit 1
export ATTNBENCH_PROFILE=full PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee -a "$log"

pack() {
  tar czf "$out/noise-$machine.tgz" results/noise "results/$machine" "results/benchmarks-$machine.saved" 2>/dev/null
}
left() { echo $(( budget - ($(date +%s) - start) )); }

if [[ -z ${ONLY_BEFORE:-} ]]; then
  timeout "$(( $(left) - 20 ))" python3 -m tools.noise measure --runs 2 --commit "$commit" \
    --config asv.gpu.conf.json --machine "$machine" --profile full \
    --bench '^bench_time\.' --bench '^bench_sdpa\.' --into-results --replace 2>&1 | tee -a "$log"
  pack
  echo "after: $(( $(date +%s) - start )) s" | tee -a "$log"
fi

if [[ -n $before ]]; then
  # Needs ~2 x (56 sets at ~1.5 s + asv's start): skip rather than leave half a table.
  if (( $(left) < 220 )); then echo "budget: $(left) s left, not starting the old-timing runs" | tee -a "$log"; exit 0; fi
  rm -rf /tmp/attnbench-before && mkdir -p /tmp/attnbench-before
  git archive "$before" benchmarks | tar -x -C /tmp/attnbench-before
  timeout "$(( $(left) - 15 ))" python3 -m tools.noise measure --runs 2 --commit "$commit" \
    --config asv.gpu.conf.json --machine "$machine" --profile full --no-floor \
    --benchmark-dir /tmp/attnbench-before/benchmarks --bench 'bench_time\.TimeForward\.time_forward' \
    --keep "results/noise/runs/$machine-before" --table "results/noise/$machine-two-runs-before.md" \
    --title "Two runs of one commit on $machine, TimeForward timed by the suite of $(git rev-parse --short "$before")" \
    --replace 2>&1 | tee -a "$log"
  pack
fi
echo "done after $(( $(date +%s) - start )) s" | tee -a "$log"
