# One-word entry points for the asv suite; the raw asv commands are in docs/asv.md.
# Override any variable on the command line: make bench RANGE=HEAD~20..HEAD PROFILE=standard
PYTHON  ?= .venv/bin/python
ASV     ?= $(PYTHON) -m asv
CONFIG  ?= asv.conf.json
ENV     ?= virtualenv:3.11
PROFILE ?= quick
RANGE   ?= HEAD~5..HEAD
BASE    ?= HEAD~1
TARGET  ?= HEAD
GOOD    ?= HEAD~20
BAD     ?= HEAD
BENCH   ?= bench_time.TimeForward.time_forward
FACTOR  ?= 1.1
RUNS    ?= 3
MACHINE ?= $(shell [ -f tools/machine.py ] && $(PYTHON) -m tools.machine --print-name 2>/dev/null)

ASV_RUN_ARGS = --config $(CONFIG) -E $(ENV) $(if $(MACHINE),--machine $(MACHINE))
export ATTNBENCH_PROFILE = $(PROFILE)

.PHONY: all setup bench noise publish preview compare find test test-gpu

all: setup bench publish  ## the main job on a fresh clone: set up, benchmark recent commits, publish

setup: .venv/.test-deps  ## venv, requirements, pinned CPU torch, asv machine file
	$(PYTHON) -m tools.machine

bench:  ## asv run over RANGE with PROFILE (quick: ~25 s per commit), samples kept, rounds interleaved
	@$(PYTHON) -m tools.noise check --profile $(PROFILE)
	@# asv exits 2 when some benchmark failed (an old commit that cannot run it, a timing that never
	@# settled); those are recorded as failed in the results and the rest of the run is kept.
	$(ASV) run $(ASV_RUN_ARGS) --record-samples --interleave-rounds $(RANGE) || { rc=$$?; [ $$rc -eq 2 ] || exit $$rc; \
	  echo "warning: some benchmarks failed or never settled (asv exit 2); they are recorded as failed, the rest is kept" >&2; }

noise:  ## noise floor of TARGET: RUNS separate asv runs -> results/noise/<machine>.json and a two-run table
	$(PYTHON) -m tools.noise measure --runs $(RUNS) --commit $(TARGET) --profile $(PROFILE) \
	  --config $(CONFIG) -E $(ENV) $(if $(MACHINE),--machine $(MACHINE))

publish:  ## results/ (all machines) -> static site in html/, assets local, badges
	$(PYTHON) -m tools.publish --config $(CONFIG)

preview:  ## serve html/ on http://127.0.0.1:8080
	$(ASV) preview --config $(CONFIG)

compare:  ## BASE vs TARGET measured interleaved; fails when a benchmark got worse by FACTOR (its own direction)
	@$(PYTHON) -m tools.noise check --profile $(PROFILE)
	$(PYTHON) -m tools.compare $(BASE) $(TARGET) --config $(CONFIG) -E $(ENV) $(if $(MACHINE),--machine $(MACHINE)) --factor $(FACTOR)

find:  ## the commit in GOOD..BAD that slowed BENCH down, confirmed by an interleaved re-measurement
	$(PYTHON) -m tools.bisect $(GOOD)..$(BAD) '$(BENCH)' --config $(CONFIG) -E $(ENV) $(if $(MACHINE),--machine $(MACHINE))

test: .venv/.test-deps  ## the whole test suite (CI runs exactly this)
	$(PYTHON) -m pytest -x -q

test-gpu:  ## the GPU suite on a CUDA machine (fails without one); log in results/gpu-tests/
	PYTHON=$(PYTHON) scripts/gpu_tests.sh $(COMMIT)

.venv/.test-deps: requirements.txt requirements-test.txt
	[ -x $(PYTHON) ] || python3.11 -m venv .venv
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -r requirements-test.txt
	touch $@
