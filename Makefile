# Two commands do all the set-up: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install serve test lint bench soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes (entry points live there).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgresql,redis]'
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/flask --app wsgi oauth init
	@echo ""
	@echo "Serving on http://127.0.0.1:8000 (Ctrl-C stops). Next steps:"
	@echo "  curl http://127.0.0.1:8000/.well-known/oauth-authorization-server"
	@echo "  .venv/bin/flask --app wsgi oauth iat create      # token for registering a worker client"
	@echo "  then follow 'Quick start' in README.md"
	@echo ""
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check app plugins tests bench examples

# Benchmarks (Debian's wrk; about 25 minutes): in-process timings, then every HTTP target (the
# Authlib reference server in bench/authlib_peer.py included) side by side under gunicorn with 2
# sync workers, then the main rows again with 2 gthread workers. Each step rewrites its section of
# docs/benchmarks.md and draws docs/benchmarks-<worker class>.png; raw data in bench/results/.
# Options go through BENCH_ARGS, e.g. BENCH_ARGS="--rounds 5 --targets bare,token_cc".
GTHREAD_TARGETS := bare,token_cc,peer_token,whoami,peer_whoami,introspect,mcp_call
bench: install
	$(BIN)/python bench/micro.py
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/run.py --worker-class gthread --targets $(GTHREAD_TARGETS) $(BENCH_ARGS)

# Soak run (about 3 minutes, PostgreSQL + Redis on 127.0.0.1): two minutes of mixed traffic against
# 2 gunicorn workers, then every acknowledged write read back; fails on a 5xx, a lost write or
# growing worker memory. Rewrites its section of docs/benchmarks.md; e.g. SOAK_ARGS="--duration 300".
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
