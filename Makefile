# liver-mm: every target installs what it needs first (idempotent: a stamp file marks a finished install).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
UI_PORT ?= 5000

# glibc malloc tuning: halves CPU training time at 224 px (see README, "Speed").
export MALLOC_MMAP_THRESHOLD_ ?= 4294967296
export MALLOC_TRIM_THRESHOLD_ ?= 4294967296
export MALLOC_TOP_PAD_ ?= 1073741824

.PHONY: install test test-slow test-cluster lint demo record ui bench bench-cluster clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev,slurm,server,tune,pretrain]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/pytest -q -m "not slow and not cluster"

# the long end-to-end tests (real subprocesses, studies, signals, the wheel)
test-slow: install
	$(BIN)/pytest -q -m "slow and not cluster"

# the real one-node SLURM cluster and MLflow-on-PostgreSQL tests (tests/scale; root + apt: scripts/*.sh install)
test-cluster: install
	$(BIN)/pytest -q -m cluster

demo: install
	$(BIN)/liver-mm study experiment=demo
	@echo
	@echo "Report: outputs/studies/stepwise-synthetic/report.md"
	@echo "MLflow UI: make ui   (then open http://127.0.0.1:$(UI_PORT))"

# refresh the committed record experiments/stepwise-synthetic/ (commit first: each run records the git commit)
record: install
	$(BIN)/liver-mm study experiment=demo study.out_dir=experiments/stepwise-synthetic

ui: install
	@$(PY) -m liver_mm.tracking.ui
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts \
		--host 127.0.0.1 --port $(UI_PORT)

# about 7 minutes on 2 cores plus the tuning line's 3 demo trials (minutes each); the GPU lines only where CUDA
# is present (bench_gpu.py: about 4 minutes on an H200)
bench: install
	$(PY) tests/benchmarks/bench_delong.py
	$(PY) tests/benchmarks/bench_train.py
	$(PY) tests/benchmarks/bench_predict.py
	$(PY) tests/benchmarks/bench_study.py
	$(PY) tests/benchmarks/bench_threads.py --threads auto,2
	$(PY) tests/benchmarks/bench_tune.py --trials 3
	$(PY) tests/benchmarks/bench_pretrain.py
	@if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(PY) tests/benchmarks/bench_gpu.py --no-compile; \
	else echo; echo "GPU: no CUDA device here; the GPU ratio and paper-study lines come from bench_gpu.py on one"; fi
	@echo "SLURM + MLflow server vs joblib: make bench-cluster (root; about an hour on 2 cores)"

# the 5-fold demo study through joblib (2 jobs, sqlite) vs the local SLURM cluster + MLflow server: wall time each and
# the per-job overhead (about an hour on 2 cores; root). Starts the cluster and the server where they are not up and
# stops only what it started (a cluster or server already running is left running). BENCH_ARGS=--tiny: 2 minutes.
bench-cluster: install
	@slurm_up=$$(sinfo -h >/dev/null 2>&1 && echo 1); \
	server_up=$$($(PY) -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$${MLFLOW_PORT:-5077}/health', timeout=2)" \
		>/dev/null 2>&1 && echo 1); \
	scripts/slurm-local.sh up && scripts/mlflow-server.sh up || exit 1; \
	MLFLOW_TRACKING_URI=http://127.0.0.1:$${MLFLOW_PORT:-5077} $(PY) tests/benchmarks/bench_slurm.py $(BENCH_ARGS); rc=$$?; \
	[ -n "$$server_up" ] || scripts/mlflow-server.sh down; \
	[ -n "$$slurm_up" ] || scripts/slurm-local.sh down; \
	exit $$rc

clean:
	rm -rf .cache outputs multirun .pytest_cache .ruff_cache
