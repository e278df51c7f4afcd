# semseg_ros: `make demo` runs the main job, `make test` the test suite; both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
DEMO_DIR ?= build/demo

.PHONY: setup test lint pytest demo bench clean

setup: $(STAMP)

$(STAMP): tools/setup.sh requirements.txt requirements-ros.txt requirements-dev.txt setup.py
	bash tools/setup.sh
	touch $@

test: lint pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/semseg synth --out $(DEMO_DIR) --frames 20 --seed 0

bench: setup
	$(PY) bench/synth.py

clean:
	rm -rf build install log .pytest_cache .mypy_cache .ruff_cache
