# Deep Learning From Scratch: one Makefile for every project folder.
#
#   make demo        train every existing folder with its defaults, run its inference, print results
#   make test-all    run every folder's tests (one process each), then the root tests
#
# Both create .venv first when it is missing or when a requirements file changed.
# `make help` lists the rest.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(abspath $(VENV))/bin/python
REQS   := requirements.txt requirements-dev.txt
# The stamp's name carries a checksum of the requirements files: a change to them makes a new
# name, so the venv is brought up to date; an unchanged tree finds the stamp and installs nothing.
STAMP  := $(VENV)/.installed-$(shell cat $(REQS) | cksum | cut -d' ' -f1)

# The folders, in learning-path order, are listed once: PROJECTS in scripts/monorepo.py.
P    ?=
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv demo test-all lint format clean results

help: ## list the targets
	@echo "Targets:"
	@grep -hE '^[a-zA-Z%_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{ t = $$1; gsub("%", "FOLDER", t); printf "  make %-16s %s\n", t, $$2 }'
	@echo "  (FOLDER is a project folder: backprop, lenet, ... gpt2; see README.md)"
	@echo "Variables: P=\"lenet gpt2\" picks folders for demo; ARGS=\"--smoke\" passes flags to train/infer."

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "error: Python 3.10 or newer is needed (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP) ## create or update .venv from the requirements files

demo: venv ## train + infer every existing folder (or P=lenet), then print the results table
	$(PY) scripts/monorepo.py demo $(P)

test-all: venv ## every folder's tests in its own process, then the root tests; one summary line
	$(PY) scripts/monorepo.py test-all

results: venv ## print the results table from each folder's runs/metrics.json (markdown: ARGS=--markdown)
	$(PY) scripts/monorepo.py results $(ARGS)

test-%: venv ## run one folder's tests: make test-FOLDER
	@test -d $* || { echo "error: no folder '$*'"; exit 2; }
	cd $* && $(PY) -m pytest -q

train-%: venv ## train one folder with its defaults: make train-FOLDER [ARGS=...]
	@test -f $*/train.py || { echo "error: no $*/train.py"; exit 2; }
	cd $* && $(PY) train.py $(ARGS)

infer-%: venv ## run one folder's inference on its last checkpoint: make infer-FOLDER [ARGS=...]
	@test -f $*/inference.py || { echo "error: no $*/inference.py"; exit 2; }
	cd $* && $(PY) inference.py $(ARGS)

bench-%: venv ## run one folder's benchmark against its reference: make bench-FOLDER
	@test -f $*/bench.py || { echo "error: no $*/bench.py"; exit 2; }
	cd $* && $(PY) bench.py $(ARGS)

lint: venv ## ruff check and ruff format --check over the whole tree
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean: ## remove runs/ and caches (keeps .venv and downloaded data/)
	find . -path ./$(VENV) -prune -o -type d \
		\( -name runs -o -name __pycache__ -o -name .pytest_cache -o -name .ruff_cache \) \
		-print0 | xargs -0 rm -rf
