#!/usr/bin/env bash
# The GPU test suite (pytest marker `gpu`, tests/test_gpu.py) on a CUDA machine, its output kept
# as results/gpu-tests/<gpu>-<commit>.txt (or $GPU_TEST_LOG) with the commit, GPU and versions on top.
# A missing GPU or triton fails (ATTNBENCH_REQUIRE_GPU=1), it is never a skip.
# Usage: scripts/gpu_tests.sh [commit]   (default: git rev-parse HEAD; give it where there is no .git)
# Environment: PYTHON (default python3), GPU_TEST_LOG.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the checkout's attention/ and benchmarks/
COMMIT=${1:-$(git rev-parse --short=8 HEAD 2>/dev/null || echo unknown)}
GPU=$($PYTHON -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no-gpu')" \
      | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')
LOG=${GPU_TEST_LOG:-results/gpu-tests/$GPU-$COMMIT.txt}
mkdir -p "$(dirname "$LOG")"
{
  echo "commit: $COMMIT"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  $PYTHON -c "import sys, torch, triton; print('gpu:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None); print('python', sys.version.split()[0], '| torch', torch.__version__, '| triton', triton.__version__)" 2>&1
  echo "command: ATTNBENCH_REQUIRE_GPU=1 $PYTHON -m pytest -v -m gpu -p no:cacheprovider tests/test_gpu.py"
  start=$(date +%s)
  ATTNBENCH_REQUIRE_GPU=1 $PYTHON -m pytest -v -m gpu -p no:cacheprovider --durations=8 tests/test_gpu.py 2>&1
  status=$?
  echo "wall: $(( $(date +%s) - start )) s, exit status $status"
  exit $status
} 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
echo "written: $LOG"
exit $status
