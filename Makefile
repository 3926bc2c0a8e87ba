# The two commands a newcomer needs: `make run` and `make test`. Both build their own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test lint format bench chaos sandbox migrate clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/activate
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/activate
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

## run: the service on 127.0.0.1:$(API_PORT) with SQLite, in-process tasks and the Stripe sandbox on
## 127.0.0.1:$(SANDBOX_PORT); `make run API_PORT=8001 SANDBOX_PORT=12112` moves both, and every URL that names them
API_PORT ?= 8000
SANDBOX_PORT ?= 12111
run: $(VENV)/.runtime-installed
	PYTHON=$(PY) API_PORT=$(API_PORT) SANDBOX_PORT=$(SANDBOX_PORT) exec bash scripts/run_local.sh

# axe-core for the browser tests' accessibility checks (injected by Playwright); without npm they are skipped.
AXE := $(VENV)/node/node_modules/axe-core/axe.min.js
$(AXE): | $(BIN)/activate
	@if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund --prefix $(VENV)/node axe-core@4.14.1; \
	else echo "npm not found: the accessibility checks will be skipped"; fi

## test: the whole suite (PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set)
test: $(VENV)/.dev-installed $(AXE)
	$(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff's checks and its formatting, as pyproject.toml configures them (CI runs this); `make format` fixes what
## it can
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: throughput, latency and memory figures (needs PostgreSQL; see README)
bench: $(VENV)/.dev-installed
	$(PY) -m bench.run
	$(PY) -m bench.backoffice
	$(PY) -m bench.renewals
	$(PY) -m bench.catalog

## chaos: paid orders through faults on a production-like stack, then the counts (minutes; needs PostgreSQL and
## redis-server; see README, Chaos run). Not part of `make test`.
chaos: $(VENV)/.dev-installed
	$(PY) -m tests.chaos

## sandbox: only the Stripe sandbox, in the foreground
sandbox: $(VENV)/.runtime-installed
	$(PY) -m stripe_sandbox --host 127.0.0.1 --port 12111

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache
