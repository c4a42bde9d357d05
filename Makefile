# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# torch and torchvision first, as a pair that imports together (timm needs torchvision; a
# torchvision picked by pip beside another torch build fails to import). The package's ranges accept it.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-cluster lint bench clean dag plan

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/snakemake --cores $(CORES) --show-failed-logs
	@echo "submission: results/submission.csv"; cat results/blend/score.json | head -5

# cost preview (jobs, CPU/GPU hours, peak memory) of the demo, winner-smoke and winner presets
plan: install
	$(BIN)/moastack plan --configfile config.yaml --configfile configs/winner-smoke.yaml --configfile configs/winner.yaml

test: install
	$(BIN)/python -m pytest -q

# the workflow on a real one-node SLURM cluster on this machine (root, Debian: apt-get installs
# slurm, munge, mariadb); daemons are stopped afterwards, whatever the outcome
test-cluster: install
	bash tests/cluster/run-tests.sh $(BIN)/python -q

# ruff, snakefmt, Snakemake's own linter, and the package layers (import-linter, pyproject.toml)
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules/
	$(BIN)/snakemake --lint --cores 1
	$(BIN)/lint-imports

bench: install
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/dag_scale.py

dag: install
	$(BIN)/snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg

clean:
	rm -rf results .snakemake
