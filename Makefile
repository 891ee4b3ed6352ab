# Two commands for a fresh CPU machine:
#   make demo   set up the virtual environment and run the main job on the bundled sample data
#   make test   set up the virtual environment and run the test suite
#   make lint   ruff format --check and ruff check (CI runs it before the tests)
# VENV (default .venv) picks the virtual environment: `make test VENV=/opt/rarft-venv`.
venv := $(if $(strip $(VENV)),$(VENV),.venv)
.PHONY: setup demo test lint bench
setup:
	VENV=$(venv) bash scripts/setup_env.sh
demo: setup
	$(venv)/bin/rarft-demo --out runs/demo
test: setup
	$(venv)/bin/python -m pytest -q
lint: setup
	$(venv)/bin/ruff format --check .
	$(venv)/bin/ruff check .
bench: setup
	$(venv)/bin/python bench/reward_throughput.py
