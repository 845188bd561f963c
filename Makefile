# Two commands do all set-up on a fresh machine (Python >= 3.11 and the package registries):
#   make repro   # create .venv, install, run the whole pipeline (dvc repro) on the embedded cohort
#   make test    # create .venv, install, run the test suite (what CI runs, see .ci/run)
# torch is installed first and pinned; for a CUDA build, e.g.:
#   make repro TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu126"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
BIN := $(VENV)/bin
RUN := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: setup repro test test-unit lint bench check-browser clean-outputs

setup: $(VENV)/.installed .dvc/plots/offline.html

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e ".[dev]"
	touch $@

# The offline page template of `dvc plots show` (.dvc/config: plots.html_template)
.dvc/plots/offline.html: scripts/plots_template.py $(VENV)/.installed
	$(BIN)/python scripts/plots_template.py $@

repro: setup
	$(RUN) dvc repro

test: setup
	scripts/ensure_chromium.sh
	scripts/cluster/ensure_rsync.sh
	$(RUN) python -m pytest

test-unit: setup
	$(RUN) python -m pytest -m "not e2e"

lint: setup
	$(RUN) ruff check src tests workflow benchmarks
	$(RUN) mypy
	@# One pinned virtualenv (requirements/lock.txt) serves every rule and DVC stage, so Snakemake's
	@# per-rule "conda environment or container" advice is the one lint left out; any other fails.
	@lints=$$($(RUN) snakemake --lint 2>&1 | grep -E '^ +\* ' | grep -v 'conda environment or container'); \
		if [ -n "$$lints" ]; then echo "$$lints"; exit 1; else echo "snakemake --lint: clean"; fi

# bench_lesionwise.py needs panoptica in a separate environment (--python), bench_transfer.py real scans (--real)
bench: setup
	$(RUN) python benchmarks/bench_cohort.py
	$(RUN) python benchmarks/bench_preprocess.py --full
	$(RUN) python benchmarks/bench_roundtrip.py
	$(RUN) python benchmarks/bench_patch_read.py
	$(RUN) python benchmarks/bench_metrics.py
	$(RUN) python benchmarks/bench_inference.py
	$(RUN) python benchmarks/bench_training.py
	$(RUN) python benchmarks/bench_models.py
	$(RUN) python benchmarks/bench_training_speed.py --no-compile

check-browser: setup
	$(RUN) dvc plots show --out dvc_plots
	scripts/check_browser.sh reports/report.html dvc_plots/index.html
