# The two commands a newcomer needs:  make run  and  make test.
# Everything else here is a convenience on top of them.
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install data tensorboard clean-outputs gpu-pack

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

## make gpu-pack: what benchmarks/gpu.sh needs on a lent GPU machine (carry .whl and gpu-data): the wheels of
## the packages its image lacks, and a gzipped copy of $NNBASICS_DATA's MNIST.
gpu-pack: $(STAMP)
	mkdir -p .whl gpu-data/MNIST/raw
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux2014_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1
	$(BIN)/pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
	for f in $${NNBASICS_DATA:?set NNBASICS_DATA to the folder holding MNIST/raw}/MNIST/raw/*-ubyte; do \
		gzip -c $$f > gpu-data/MNIST/raw/$$(basename $$f).gz; done
