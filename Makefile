# The two commands of the README: `make demo` and `make test`. Both set up (or reuse) $(VENV).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench clean

setup:
	@VENV=$(VENV) bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py $(DEMO_ARGS)

# The whole suite, slow learning checks included. Exit 5 ("no tests collected") is a failure.
test: setup
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(PY) tools/benchmark_backbone.py --json work_dirs/bench/backbone.json
	$(PY) tools/benchmark_pretrain.py --json work_dirs/bench/pretrain.json

clean:
	rm -rf work_dirs
