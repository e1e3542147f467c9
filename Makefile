# algobox developer commands. `make demo` and `make test` work on a fresh machine with Python + pip.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQUIREMENTS := pyproject.toml $(wildcard requirements-*.txt) requirements-dev.txt constraints-cpu.txt $(wildcard containers/*/requirements*.txt)

.PHONY: install nginx test demo bench bench-deps lint clean

install: $(VENV)/.installed nginx

# nginx fronts gunicorn in the images (slow clients, payload limit); the serving tests use it when present.
# Installed with apt where that is possible (root or passwordless sudo); otherwise those tests say so and skip.
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx) >/dev/null; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    (sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx) >/dev/null; \
	  else echo "nginx not installed and apt-get not usable: the nginx serving tests will skip"; fi; }

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

bench-deps: install
	$(PY) -m pip install -q -r requirements-bench.txt

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
