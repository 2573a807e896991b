# Sourced by the scripts/gpu_*_run.sh scripts on a GPU box without a package index, from the
# repository root that holds .whl/ (asv's wheels and attnbench.bundle, whose branch main is the
# history to benchmark). Installs the wheels, clones the bundle into /tmp/attnbench-gpu and enters
# it, sets $machine (MACHINE, else the derived name: a lent box can be another host of the same
# model each time) and writes asv's machine file, its facts appended to $log.
gpu_box_checkout() {
  local log=$1 here
  here=$(pwd)
  # asv and its few missing dependencies, from wheels carried along (no index is reachable).
  python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl || return 1
  rm -rf /tmp/attnbench-gpu && git clone -q "$here/.whl/attnbench.bundle" /tmp/attnbench-gpu \
    && cd /tmp/attnbench-gpu && git checkout -q main || return 1
  machine=${MACHINE:-$(python3 -m tools.machine --print-name)}
  python3 -m tools.machine --name "$machine" | tee -a "$log"
}
