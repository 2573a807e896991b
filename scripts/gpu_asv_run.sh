#!/usr/bin/env bash
# Run the asv suite over a commit range on a GPU box that has a CUDA torch and no package registry.
#
# Prepared here, before sending the repo to the box (docs/gpu.md):
#   pip download asv and the few dependencies the box lacks into .whl/ (wheels for Python 3.12)
#   git bundle create .whl/attnbench.bundle main      # asv needs the history; the box gets files only
# On the box, from the repository root:
#   scripts/gpu_asv_run.sh OUTDIR BUDGET_S RANGE [extra asv run args, e.g. -b REGEX]
# Benchmarks the range newest commit first, one `asv run <sha>^!` each (asv saves a commit's results
# only when that commit finishes), stops starting new commits once BUDGET_S seconds are spent, and
# leaves OUTDIR/results-<machine>.tgz (asv result files so far) and OUTDIR/asv-run.log.
set -uo pipefail
out=${1:?usage: gpu_asv_run.sh OUTDIR BUDGET_S RANGE [asv args...]}
budget=${2:?missing BUDGET_S}; range=${3:?missing RANGE}; shift 3
here=$(pwd); start=$(date +%s); log="$out/asv-run.log"

# asv and its few missing dependencies, from wheels carried along (no index is reachable).
python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl || exit 1

work=/tmp/attnbench-gpu
rm -rf "$work" && git clone -q "$here/.whl/attnbench.bundle" "$work" && cd "$work" || exit 1
git checkout -q main
machine=$(python3 -m tools.machine --print-name)
python3 -m tools.machine | tee "$log"
export ATTNBENCH_PROFILE=${ATTNBENCH_PROFILE:-full} PYTHONUNBUFFERED=1

for sha in $(git rev-list "$range"); do
  left=$(( budget - ($(date +%s) - start) ))
  if (( left < 60 )); then echo "budget spent: not starting $sha" | tee -a "$log"; break; fi
  echo "== $sha ($(git log -1 --format=%s "$sha")), ${left} s left" | tee -a "$log"
  timeout "$left" python3 -m asv run --config asv.gpu.conf.json --machine "$machine" \
    --show-stderr "$@" "$sha^!" 2>&1 | tee -a "$log"
  tar czf "$out/results-$machine.tgz" "results/$machine" results/benchmarks.json
done
echo "done after $(( $(date +%s) - start )) s" | tee -a "$log"
