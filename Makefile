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

demo: $(STAMP)
	$(PY) -m lstm_ref.demo

test: $(STAMP)
	KERAS_BACKEND=torch $(PY) -m pytest
