# The two commands a newcomer needs:  make run  and  make test.
# Everything else here is a convenience on top of them.
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install data tensorboard clean-outputs

# Create .venv if missing and install the package with its test extra.
# pip installs torch==2.14.1/torchvision==0.29.1 from local disk where they lie there.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test,sweep]'
	touch $(STAMP)

install: $(STAMP)

data: $(STAMP)
	$(BIN)/nnbasics-data fetch mnist

## make run: set up, make MNIST available, train the default config.
run: data
	$(BIN)/nnbasics-train $(ARGS)

## make test: set up, run the fast offline test suite (two workers: one per core).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

tensorboard: $(STAMP)
	$(BIN)/nnbasics-board --logdir outputs --port $${PORT:-6006}
