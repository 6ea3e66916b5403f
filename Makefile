# The front door. `make demo` runs the main job, `make test` runs every check CI runs.
# Both create their own virtualenv in .venv and install what they need into it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit bench faults reliability venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "edgefleet needs Python >= 3.11 (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
	  { echo "could not create a virtualenv: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: venv
	$(BIN)/edgefleet probe
	@echo
	@echo "That was this machine's inventory (edgefleet probe). Not built yet: 'edgefleet up' will run the whole"
	@echo "system here (control plane, device agent, model server) and use this inventory to pick execution providers."

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest -m unit

# pytest exits 5 when it collected no test: that is an error here, never a pass.
test: lint typecheck
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python -m pytest -m bench -p no:cacheprovider -s

# The fault-injection suite at its full trial counts (root; about two hours on 2 cores), then
# docs/reliability.md from its results. `make test` runs the same tests with a few trials each.
# RELIABILITY_EXTRA: more results files or directories (same JSON shape) for the report.
FAULT_RESULTS     ?= tests/faults/results
RELIABILITY_EXTRA ?=

faults: venv
	rm -rf $(FAULT_RESULTS)
	EDGEFLEET_FAULT_TRIALS=full EDGEFLEET_FAULT_RESULTS=$(FAULT_RESULTS) \
	  $(BIN)/python -m pytest tests/faults -p no:cacheprovider; status=$$?; \
	  $(MAKE) --no-print-directory reliability && exit $$status

reliability: venv
	$(BIN)/python -m edgefleet.testing.reliability $(FAULT_RESULTS) $(RELIABILITY_EXTRA) -o docs/reliability.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
