# The commands the README gives. Each creates .venv and installs the project if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Embedded mode (SQLite, in-process delivery). Loopback endpoints are allowed here
# so that a receiver on this machine can be tried; production refuses them.
run: install
	$(BIN)/gateway migrate
	GATEWAY_ALLOWED_NETWORKS=$${GATEWAY_ALLOWED_NETWORKS-127.0.0.0/8,::1/128} \
		$(BIN)/gateway serve --host $(HOST) --port $(PORT)

# The whole suite, on SQLite + in-process and on PostgreSQL + Redis + arq workers
# (GATEWAY_TEST_DATABASE_URL / GATEWAY_TEST_REDIS_URL, else the local servers).
test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy gateway

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
