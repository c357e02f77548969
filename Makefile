# carecircle — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

# Re-install whenever the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/carecircle demo --out out/demo

test: install
	$(PY) -m pytest -q -p no:cacheprovider

# Every benchmark, each writing its section of bench/RESULTS.md (routing and the fast start;
# siting against spopt; capacity against pysal access; batch and tiles on Dask; walk rules).
bench: install
	$(PY) -m pip install -q -e ".[test,bench]"
	$(PY) bench/run.py
	$(PY) bench/siting.py
	$(PY) bench/capacity.py
	$(PY) bench/batch.py
	$(PY) bench/walk_rules.py

clean:
	rm -rf out .pytest_cache .hypothesis
