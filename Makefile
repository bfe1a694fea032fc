# The two commands of the README: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo
PORT   ?= 8000

.PHONY: install install-train dev demo serve test lint bench container-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installation by role (pyproject.toml): `install` serves (serve, warm-cache, versions,
# rollback), `install-train` adds training and evaluation, `dev` adds the test tools.
# Stamps re-run an install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-train: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-train $(VENV)/.installed

install: $(VENV)/.installed

install-train: $(VENV)/.installed-train

dev: $(VENV)/.installed-dev
	scripts/ensure-tool.sh redis-server
	scripts/ensure-tool.sh chromium

# A store whose history ends today, a tuned model (tuning capped so that the first answer
# comes within about two minutes), its evaluation report, then the service with a few
# hundred simulated shoppers sent through it and the report of what its lists earned, on
# its dashboard (`make serve` restarts it without training again; PORT=8080 serves
# elsewhere).
demo: install-train
	$(BIN)/recsvc generate --out $(DEMO)/data --users 3000 --items 800 --events 150000 --seed 7
	$(BIN)/recsvc train --interactions $(DEMO)/data/interactions.csv \
		--items $(DEMO)/data/items.csv --users $(DEMO)/data/users.csv \
		--model-root $(DEMO)/models --tune-budget 40 --quiet
	$(BIN)/recsvc evaluate --interactions $(DEMO)/data/interactions.csv \
		--items $(DEMO)/data/items.csv --users $(DEMO)/data/users.csv \
		--split time --tune-budget 15 --quiet --report $(DEMO)/evaluation
	scripts/demo-traffic.sh $(BIN) $(DEMO) $(PORT)

serve: install
	@test -L $(DEMO)/models/current || { echo "no demo model under $(DEMO)/models: run 'make demo'"; exit 2; }
	@echo "serving on http://127.0.0.1:$(PORT) (try /recommend?user_id=U1 and /docs); Ctrl-C stops"
	$(BIN)/recsvc serve --model-root $(DEMO)/models --host 127.0.0.1 --port $(PORT)

test: dev
	$(BIN)/ruff check recsvc training tests bench loadtests
	$(BIN)/python -m pytest
	@if [ "$$(id -u)" -eq 0 ]; then scripts/container-check.sh; \
	else echo "container check skipped: it needs root (run 'make container-check' as root)"; fi

bench: install-train
	scripts/ensure-tool.sh redis-server
	scripts/ensure-tool.sh wrk
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/serve_cache_hit.py
	$(BIN)/python bench/serve_compute.py
	$(BIN)/python bench/warm_cache.py

# Builds the Dockerfile with podman on a debootstrap base and serves from the image's
# filesystem (no registry, no container runtime needed). Part of `make test` as root.
container-check:
	scripts/container-check.sh

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
