# The README's two commands: `make run` and `make test`. Both create or update .venv as needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench fmt clean postgres screenshots

# Re-install when the project's metadata changes; `touch` records a successful install.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/studybot db migrate
	$(BIN)/studybot run

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench

typecheck: $(STAMP)
	$(BIN)/mypy bot

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

fmt: $(STAMP)
	$(BIN)/ruff format bot tests bench
	$(BIN)/ruff check --fix bot tests bench

# The README's dashboard pictures, taken by the browser test (Chromium from Debian: `make postgres`).
screenshots: $(STAMP)
	STUDYBOT_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_dashboard_browser.py

bench: $(STAMP)
	$(BIN)/python -m bench

# The PostgreSQL server (and Chromium) from Debian, for the Postgres tests and benchmarks. Needs root.
postgres:
	bash .ci/system-packages

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
