# Two commands do all the set-up on a fresh machine with python3 and make:
#   make demo   create/refresh .venv, install segflow, run the demo and write a report under out/
#   make test   create/refresh .venv, install segflow with its test tools, run ruff, the docs build
#               and pytest
# Also: make docs (API reference in site/), make wheel-check (the built wheel, installed without
# torch in a clean venv, runs the README tour's light commands), make bench, make studio,
# make loop (the scripted train-assess-retrain loop, a few minutes).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs docs-serve wheel-check bench clean venv browser studio loop

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall when the project definition or the pinned set changes; editable, so code edits need
# no reinstall. pyproject.toml holds lower bounds; constraints.txt the exact versions.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m segflow.demo --out out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# The API reference from the docstrings; --strict turns every warning into an error.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

# Build the wheel, install it (not editable) into a clean venv with only the core dependencies,
# and run the README tour's light commands from it; a deep command must name segflow[deep].
wheel-check: $(STAMP)
	BUILD_PY=$(abspath $(BIN))/python PY=$(PY) scripts/wheel_check.sh

# The studio's browser tests drive Debian's Chromium (never a browser downloaded by a tool).
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium (apt-get install -y chromium as root); browser tests will be skipped"

test: $(STAMP) lint docs browser
	$(BIN)/python -m pytest -n 2

bench: $(STAMP)
	$(BIN)/python benchmarks/classical.py

# The whole loop of issue 10, scripted on a synthetic domain: brief, train, assess ("retrain"),
# label the most uncertain images, retrain, assess ("meets the brief"); out/loop/report.html.
loop: $(STAMP)
	$(BIN)/python -m segflow.loop --out out/loop

studio: $(STAMP)
	$(BIN)/segflow studio --demo

clean:
	rm -rf out .pytest_cache build dist site
