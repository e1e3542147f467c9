# algobox developer commands. `make demo` and `make test` work on a fresh machine with Python + pip.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQUIREMENTS := pyproject.toml $(wildcard requirements-*.txt) requirements-dev.txt constraints-cpu.txt $(wildcard containers/*/requirements*.txt)

.PHONY: install test demo bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) benchmarks/bench_recordio.py
	$(PY) benchmarks/bench_serving.py
	$(PY) benchmarks/bench_kmeans.py
	$(PY) benchmarks/bench_pca.py
	$(PY) benchmarks/bench_image_classification.py

lint: install
	$(VENV)/bin/hadolint Dockerfile.cpu Dockerfile.gpu

clean:
	rm -rf $(VENV) build *.egg-info
