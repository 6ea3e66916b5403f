# The front door. `make up` runs the main job (`edgefleet up`), `make test` runs every check CI runs.
# Both create their own virtualenv in .venv and install what they need into it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: up down demo test lint typecheck unit bench docs security soak faults reliability venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "edgefleet needs Python >= 3.11 (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
	  { echo "could not create a virtualenv: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[up,dev,docs]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# The whole system on this machine: control plane, device agent, a signed model rolled out in two
# waves, a pipeline feeding it (docs/up.md). `make down` stops it; a second `make up` reuses the state.
# Options go through UP_ARGS, e.g. make up UP_ARGS='--port 8480'.
up: venv
	$(BIN)/edgefleet up $(UP_ARGS)

down:
	@if [ -x $(BIN)/edgefleet ]; then $(BIN)/edgefleet down $(DOWN_ARGS); else echo "nothing was running (no $(VENV))"; fi

demo: up

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

# The documentation site: docs/ + mkdocs.yml -> site/ (a warning, such as a broken link, is an error).
docs: venv
	$(BIN)/mkdocs build --strict --site-dir site

# The security tests with their full counts (docs/security-tests.md); results into tests/faults/results/.
SECURITY_TESTS := tests/integration/security tests/unit/test_parser_properties.py \
	tests/integration/agent/test_agent_secrets.py tests/integration/agent/test_agent_tls.py
security: venv
	EDGEFLEET_SECURITY_FULL=1 EDGEFLEET_FAULT_RESULTS=tests/faults/results \
	  $(BIN)/python -m pytest -o timeout=1800 $(SECURITY_TESTS)

# Soak and load (docs/soak.md): 10 minutes of `edgefleet serve`, then the control plane on PostgreSQL.
soak: venv
	$(BIN)/python bench/soak/serve_soak.py --duration 600 --out bench/soak/results/serve-soak.json
	$(BIN)/python bench/soak/control_plane_soak.py --devices 500 --duration 300 \
	  --out bench/soak/results/control-plane-soak.json

# The fault-injection suite at its full trial counts (root; about two hours on 2 cores), then
# docs/reliability.md from its results. `make test` runs the same tests with a few trials each.
# The security results (`make security`, security-*.json) in the same directory are kept for the report.
# RELIABILITY_EXTRA: more results files or directories (same JSON shape) for the report.
FAULT_RESULTS     ?= tests/faults/results
RELIABILITY_EXTRA ?=

faults: venv
	mkdir -p $(FAULT_RESULTS)
	find $(FAULT_RESULTS) -maxdepth 1 -name '*.json' ! -name 'security-*' -delete
	EDGEFLEET_FAULT_TRIALS=full EDGEFLEET_FAULT_RESULTS=$(FAULT_RESULTS) \
	  $(BIN)/python -m pytest tests/faults -p no:cacheprovider; status=$$?; \
	  $(MAKE) --no-print-directory reliability && exit $$status

reliability: venv
	$(BIN)/python -m edgefleet.testing.reliability $(FAULT_RESULTS) $(RELIABILITY_EXTRA) -o docs/reliability.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
