# The commands the README gives. Each creates .venv and installs the project if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: test-fast install install-runtime run test lint bench clean

# `run` needs the gateway's runtime only; `test`, `lint` and `bench` add the
# development toolchain (test clients, linters, provider SDKs) on top.
$(BIN)/.installed-runtime: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The Python SDK (clients/python, a package of its own) comes too: its tests are in tests/sdk.
$(BIN)/.installed: $(BIN)/.installed-runtime clients/python/pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e clients/python
	touch $@

install-runtime: $(BIN)/.installed-runtime

install: $(BIN)/.installed

# Embedded mode (SQLite, in-process delivery). `gateway dev-setup` writes the
# development defaults into .env (endpoints on loopback allowed, so that a receiver
# on this machine can be tried; production refuses them), where the CLI and any
# worker started here read them too.
run: install-runtime
	$(BIN)/gateway dev-setup
	$(BIN)/gateway migrate
	$(BIN)/gateway serve --host $(HOST) --port $(PORT)

# The whole suite, on SQLite + in-process and on PostgreSQL + Redis + arq workers
# (GATEWAY_TEST_DATABASE_URL / GATEWAY_TEST_REDIS_URL, else the local servers).
# Tests run in TEST_WORKERS processes (pytest-xdist), handed out one by one (a
# file's tests kept together left one long file running alone at the end); those
# marked `serial` (they restart PostgreSQL or empty the shared Redis database) run
# afterwards, alone. Four processes on two cores: most tests wait on the gateways and
# receivers they start (a whole run used about one core of two), so two left half idle.
TEST_WORKERS ?= 4
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load -m "not serial"
	$(BIN)/python -m pytest -m serial

# The edit loop: the same suite without the long fault and process-kill tests.
test-fast: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load -m "not slow and not serial"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy gateway
	$(BIN)/mypy --config-file clients/python/pyproject.toml clients/python/hookgate

# The benchmark (bench/, all on loopback: see bench/__main__.py). Its receiver is nginx
# from Debian's nginx-light, installed here if missing; the package may start a system
# nginx on port 80, which the bench does not use, so it is stopped again. Without
# nginx the bench falls back to its own aiohttp receiver and says so.
# `make bench BENCH_ARGS="w1 w3 --quick"` runs a part, small.
BENCH_ARGS ?=
bench: install
	@if [ ! -x /usr/sbin/nginx ]; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		export DEBIAN_FRONTEND=noninteractive; \
		{ $$sudo apt-get install -y nginx-light \
			|| { $$sudo apt-get update && $$sudo apt-get install -y nginx-light; }; } \
		&& { $$sudo service nginx stop >/dev/null 2>&1 || true; } \
		|| echo "!!! nginx-light could not be installed: the bench uses its aiohttp receiver"; \
	fi
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
