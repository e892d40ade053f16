# The two commands a newcomer types: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
export FLASK_APP := wsgi.py

.PHONY: run test lint bench loadtest wrk install install-bench system messages serve-jobs

# System packages first (installed when missing, or one line saying what to install), so that
# nothing else starts on a machine that cannot run it. `run` needs less than `test`.
SYSTEM_FOR ?= run
system:
	@scripts/system-packages $(SYSTEM_FOR)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

run: SYSTEM_FOR = run
run: system install
	$(BIN)/flask db upgrade
	$(BIN)/flask portal demo-data --if-empty
	@echo ""
	@echo "  The portal runs on http://127.0.0.1:$(PORT)"
	@echo "  Selfcare: http://127.0.0.1:$(PORT)/login        customer@example.com / Customer-demo-1"
	@echo "  Staff:    http://127.0.0.1:$(PORT)/staff/login  operator@example.com / Operator-demo-1"
	@echo "            (billing, Brno only)                  billing@example.com / Billing-demo-1"
	@echo ""
	@# The job consumer runs beside the server and stops with it.
	$(BIN)/flask jobs consumer & jobs=$$!; \
	trap 'kill $$jobs 2>/dev/null; wait $$jobs' EXIT; trap 'exit 130' INT TERM; \
	$(BIN)/flask run --host 127.0.0.1 --port $(PORT)

# Benchmarks (not part of `make test`): SCALE=small for a quick run. PostgreSQL too when
# PORTAL_BENCH_DATABASE_URL is set. Results land in bench/results.json. The page benchmark
# drives gunicorn with wrk (Debian package, installed here when missing and possible; else a
# Python load generator stands in and says so).
SCALE ?= large
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@

install-bench: $(VENV)/.installed-bench

wrk:
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null 2>&1; } || \
	  echo "NOTE: wrk is not installed (apt-get install wrk); the page benchmark uses its Python load generator."

bench: system install-bench wrk
ifeq ($(SCALE),small)
	$(BIN)/python -m bench.billing --sizes 1000
	$(BIN)/python -m bench.documents --repeat 3 --renders 100
	$(BIN)/python -m bench.pages --scale small
	$(BIN)/python -m bench.usage --readings 10000
	$(BIN)/python -m bench.webhooks --events 500 --steps 50
	$(BIN)/python -m bench.statements --entries 2000
else
	$(BIN)/python -m bench.billing --sizes 1000,10000,100000
	$(BIN)/python -m bench.documents
	$(BIN)/python -m bench.pages --scale large
	$(BIN)/python -m bench.usage --readings 10000
	$(BIN)/python -m bench.webhooks --events 2000 --steps 200
	$(BIN)/python -m bench.statements --entries 50000
endif

# Load test on PostgreSQL (bounded in time, loopback only): 50 customers browsing and 5
# operators working while a billing run and a dunning run execute. Exit code 1 when errors,
# duplicate invoices or payments left unpaired are not zero.
PORTAL_LOADTEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1/portal_loadtest
LOADTEST_SECONDS ?= 60
loadtest: system install-bench
	PORTAL_LOADTEST_DATABASE_URL=$(PORTAL_LOADTEST_DATABASE_URL) $(BIN)/python -m bench.loadtest --seconds $(LOADTEST_SECONDS)

test: SYSTEM_FOR = test
test: system install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check portal tests

# Refresh the translation catalogues after changing user-facing text.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k ngettext:1,2 --ignore-dirs '.* __pycache__ .venv' \
	  -o portal/translations/messages.pot .
	$(BIN)/pybabel update -i portal/translations/messages.pot -d portal/translations
	$(BIN)/pybabel compile -d portal/translations
