# The two commands a newcomer needs:
#   make demo   set up, check every example spec, compile the support desk agent and show the result
#   make test   set up, then run every test: Python, the TypeScript runtime in workerd, generated projects
#   make workbench  set up (the workbench extra included), then open JupyterLab on notebooks/
#
# Everything installs from the project's own files: pyproject.toml for Python,
# codegen/cloudflare/package.json + package-lock.json for the Node toolchain (Node 22 from npm,
# wrangler, workerd, TypeScript, the Workers vitest plugin), shared by every generated project.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NODE_DIR := codegen/cloudflare
DEMO_OUT := out/support_desk

# Keep wrangler quiet and offline: no metrics, no Cloudflare requests, no banner.
export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
export WRANGLER_HIDE_BANNER := true

.PHONY: setup node-setup browser-setup demo test lint clean workbench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,workbench]'
	touch $@

node-setup: $(NODE_DIR)/node_modules/.installed

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm --prefix $(NODE_DIR) ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium, for the test that opens the operations review in a real headless browser. Installed only
# when missing (apt-get needs root; CI runs as root).
browser-setup:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

demo: setup
	$(BIN)/agentspec check specs/*.agent
	$(BIN)/agentspec compile specs/support_desk.agent -o $(DEMO_OUT)
	@echo
	@echo "Generated project ($(DEMO_OUT)):"
	@cd $(DEMO_OUT) && find . -type f -not -path './node_modules/*' | sort | sed 's|^\./|  |'

# The prototype notebook runs a compiled agent under wrangler dev, hence node-setup. JupyterLab listens on
# loopback only and prints its URL (with its token) instead of opening a browser.
workbench: setup node-setup
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser notebooks/

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup node-setup browser-setup lint
	npm --prefix $(NODE_DIR) run --silent typecheck:runtime
	npm --prefix $(NODE_DIR) run --silent test:runtime
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules out .pytest_cache .ruff_cache .hypothesis
