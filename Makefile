# Set-up and entry points. `make demo` and `make test` work on a fresh machine:
# each creates .venv and installs the package with its extras on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,parity,data]"
	touch $(STAMP)

install: $(STAMP)

# nbgrader runs commands of its own environment (alembic), so .venv/bin goes first on PATH.
RUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" KERAS_BACKEND=torch

demo: $(STAMP)
	$(RUN) $(PY) -m grader demo

test: $(STAMP)
	$(RUN) $(PY) -m pytest
