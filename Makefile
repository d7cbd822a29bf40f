# Two commands on a fresh clone: `make run` and `make test` (README.md). Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
CLUSTER_PORT ?= 8001
CLUSTER_PROCESSES ?= 2

.PHONY: run test typecheck migrate cluster bench soak clean

$(BIN)/.installed: requirements.txt clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

migrate: $(BIN)/.installed
	$(BIN)/python manage.py migrate --noinput -v0

run: migrate
	$(BIN)/python manage.py demo --host $(HOST) --port $(PORT)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m retrochat.serve

# Two processes on ports 8001 and 8002 sharing the local Redis (REDIS_URL, default
# redis://127.0.0.1:6379/0) and the database (docs/deploy.md). No make variable named REDIS_URL
# here: defining one would stop make from passing the environment's REDIS_URL to `make test`.
cluster: migrate
	$(BIN)/python manage.py demo --host $(HOST) --port $(CLUSTER_PORT)
	HOST=$(HOST) PORT=$(CLUSTER_PORT) RETROCHAT_PROCESSES=$(CLUSTER_PROCESSES) $(BIN)/python -m retrochat.cluster

# The project, its baselines and peers in one run (bench/run.py); rewrites docs/benchmarks.md and .png
# and bench/results/latest.json. BENCH_QUICK=1 is a smoke run (small sizes) that writes
# bench/results/quick.{json,md,png} instead, never over the report. PostgreSQL: BENCH_POSTGRES_URL.
BENCH_OUTPUT := $(if $(filter 1,$(BENCH_QUICK)),BENCH_RESULTS=bench/results/quick.json BENCH_DOC=bench/results/quick.md,)
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	cd bench/loadgen && npm ci --silent --no-audit --no-fund
	cd bench/baselines/nodesocketio && npm ci --silent --no-audit --no-fund
	$(BENCH_OUTPUT) $(BIN)/python bench/run.py
	$(BENCH_OUTPUT) $(BIN)/python bench/report.py

# Two server processes on PostgreSQL + Redis, thousands of clients and faults for SOAK_MINUTES (10);
# rewrites docs/reliability.md (soak/run.py). Needs PostgreSQL on 127.0.0.1:5432 (trust auth) and
# Redis on 127.0.0.1:6379; uses the database retrochat_soak and Redis database 9, created/migrated here.
SOAK_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/retrochat_soak
soak: $(BIN)/.installed
	SOAK_DATABASE_URL=$(SOAK_DATABASE_URL) $(BIN)/python -m soak.run prepare
	DATABASE_URL=$(SOAK_DATABASE_URL) $(BIN)/python manage.py migrate --noinput -v0
	SOAK_DATABASE_URL=$(SOAK_DATABASE_URL) $(BIN)/python -m soak.run

# The suite on TEST_WORKERS pytest-xdist processes (`make test TEST_WORKERS=0`: one process, as plain
# pytest runs it). Each file's tests stay on one worker (pytest.ini); tests/settings.py gives each
# worker Redis of its own, tests/live.py its own ports. Three on two cores: the live tests spend
# much of their time waiting for servers, and a third worker fills that time (2: ~70 s, 3: ~57 s).
TEST_WORKERS ?= 3
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# mypy with the Django and DRF plugins over the project's packages (mypy.ini).
typecheck: $(BIN)/.installed
	$(BIN)/python -m mypy

# What the build and the tests recreate; the database and .secret_key (your data, and the demo
# passwords derived from it) stay: delete them by hand for a fresh start.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache clients/js/node_modules bench/loadgen/node_modules \
		bench/baselines/nodesocketio/node_modules clients/python/src/*.egg-info
