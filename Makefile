# eventapp — `make run` sets up and serves the app; `make test` runs the whole suite (SQLite + PostgreSQL).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := eventapp
PORT ?= 5000
# The server's environment: links in mails and calendars follow the port unless PUBLIC_BASE_URL is set.
export PORT
export PUBLIC_BASE_URL ?= http://127.0.0.1:$(PORT)

.PHONY: run test bench setup system-deps system-deps-test translations migrate demo lint clean vendor

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create a virtualenv: install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

system-deps:
	@scripts/system-deps.sh run

system-deps-test:
	@scripts/system-deps.sh test

translations: $(VENV)/.installed
	$(BIN)/pybabel -q compile -d translations

# Browser libraries from npm, served from static/vendor/: the QR decoder for phones without BarcodeDetector,
# and axe-core, which the accessibility tests inject (same origin, so the Content-Security-Policy allows it).
node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for static/vendor (apt-get install npm)"; exit 1; }
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

static/vendor/%: node_modules/.package-lock.json
	@mkdir -p static/vendor
	cp $(VENDOR_$*) $@

VENDOR_jsQR.js := node_modules/jsqr/dist/jsQR.js
VENDOR_axe.min.js := node_modules/axe-core/axe.min.js

vendor: static/vendor/jsQR.js static/vendor/axe.min.js

setup: system-deps $(VENV)/.installed translations vendor

migrate: setup
	$(BIN)/flask db upgrade

demo: migrate
	$(BIN)/flask demo-data

run: demo
	@echo ""
	@echo "  eventapp is running at http://127.0.0.1:$(PORT)/"
	@echo "  Staff login: http://127.0.0.1:$(PORT)/staff/  (admin@example.jp / hanamaki-grape-demo)"
	@echo "  API token:   $(BIN)/flask create-token admin@example.jp"
	@echo "  Mails are written to instance/mail/*.eml"
	@echo ""
	$(BIN)/gunicorn --bind 127.0.0.1:$(PORT) --workers 2 --access-logfile - wsgi:app

test: setup system-deps-test
	@scripts/run-tests.sh

bench: setup system-deps-test
	$(BIN)/python benchmarks/run_all.py

lint: $(VENV)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) instance/*.sqlite3* .pytest_cache
