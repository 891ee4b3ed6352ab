# Two commands for a fresh CPU machine:
#   make demo   set up ./.venv and run the main job on the bundled sample data
#   make test   set up ./.venv and run the test suite
.PHONY: setup demo test bench
setup:
	bash scripts/setup_env.sh
demo: setup
	.venv/bin/rarft-demo --out runs/demo
test: setup
	.venv/bin/python -m pytest -q
bench: setup
	.venv/bin/python bench/reward_throughput.py
