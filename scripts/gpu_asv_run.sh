#!/usr/bin/env bash
# Run the asv suite over a commit range on a GPU box that has a CUDA torch and no package registry.
#
# Prepared here, before sending the repo to the box (docs/asv.md, "Running the suite on a GPU box"):
#   pip download asv and the few dependencies the box lacks into .whl/ (wheels for Python 3.12)
#   git bundle create .whl/attnbench.bundle main      # asv needs the history; the box gets files only
# On the box, from the repository root:
#   ASV_ARGS="-a rounds=1 ..." scripts/gpu_asv_run.sh OUTDIR BUDGET_S RANGE REGEX [REGEX ...]
# Benchmarks the range newest commit first with one `asv run <sha>^! -b REGEX` per regex: asv saves
# results only when an invocation finishes, so small invocations keep what a time limit would
# otherwise throw away. Stops starting new invocations once BUDGET_S seconds are spent, and leaves
# OUTDIR/results-<machine>.tgz (asv result files so far) and OUTDIR/asv-run.log.
set -uo pipefail
out=${1:?usage: gpu_asv_run.sh OUTDIR BUDGET_S RANGE [asv args...]}
budget=${2:?missing BUDGET_S}; range=${3:?missing RANGE}; shift 3
(( $# > 0 )) || { echo "gpu_asv_run.sh: give at least one benchmark REGEX" >&2; exit 2; }
start=$(date +%s); log="$out/asv-run.log"; : > "$log"

source "$(dirname "$0")/gpu_box_checkout.sh"
gpu_box_checkout "$log" || exit 1
export ATTNBENCH_PROFILE=${ATTNBENCH_PROFILE:-full} PYTHONUNBUFFERED=1

# RANGE: a git range (A..B, X^!) or a comma-separated list of commits, benchmarked in that order.
if [[ $range == *..* || $range == *^!* ]]; then shas=$(git rev-list "$range"); else shas=$(git rev-parse ${range//,/ }); fi
for sha in $shas; do
  echo "== $sha ($(git log -1 --format=%s "$sha"))" | tee -a "$log"
  for regex in "$@"; do
    left=$(( budget - ($(date +%s) - start) ))
    if (( left < 30 )); then echo "budget spent: not starting $sha -b $regex" | tee -a "$log"; break 2; fi
    # shellcheck disable=SC2086  # ASV_ARGS is a list of words on purpose
    timeout "$left" python3 -m asv run --config asv.gpu.conf.json --machine "$machine" \
      --show-stderr --record-samples ${ASV_ARGS:-} -b "$regex" "$sha^!" 2>&1 | tee -a "$log"
    cp results/benchmarks.json "results/benchmarks-$machine.saved"  # tools.publish merges it
    tar czf "$out/results-$machine.tgz" "results/$machine" "results/benchmarks-$machine.saved"
  done
done
echo "done after $(( $(date +%s) - start )) s" | tee -a "$log"
