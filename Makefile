# Two commands do all the set-up on a fresh machine with python3 and make:
#   make demo   create/refresh .venv, install segflow, run the demo and write a report under out/
#   make test   create/refresh .venv, install segflow with its test tools, run ruff and pytest
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean venv browser studio

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when the project definition changes; editable, so code edits need no reinstall.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m segflow.demo --out out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# The studio's browser tests drive Debian's Chromium (never a browser downloaded by a tool).
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium (apt-get install -y chromium as root); browser tests will be skipped"

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -n 2

bench: $(STAMP)
	$(BIN)/python benchmarks/classical.py

studio: $(STAMP)
	$(BIN)/segflow studio --demo

clean:
	rm -rf out .pytest_cache build
