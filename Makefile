# The front door. `make demo` runs the main job, `make test` runs every check CI runs.
# Both create their own virtualenv in .venv and install what they need into it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit bench security soak venv clean

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

# The security tests with their full counts (docs/security.md); results into tests/faults/results/.
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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
