# Two commands set everything up on a fresh machine (Python >= 3.10, g++, make, perl):
#   make demo   create .venv if missing, install imcflow, run the main job on the built-in default
#   make test   the same set-up, then the whole regression (unit, cocotb/Verilator, formal)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.imcflow-installed
JOBS   ?= auto

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/imcflow demo

test: $(STAMP)
	$(BIN)/pytest -n $(JOBS) -m "not benchmark"

clean:
	rm -rf $(VENV) build .cache .pytest_cache *.egg-info
