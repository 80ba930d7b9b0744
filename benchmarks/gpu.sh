#!/usr/bin/env bash
# The GPU check in one script, for a session that is lent a CUDA machine (under 10 minutes on one
# H100): the CUDA tests, the population tests on the GPU, then the GPU benchmark of population
# training (K members stacked against the same K runs one by one, widening nets).
#
# Prepare here, once: the wheels of what the GPU image lacks (hydra-core, omegaconf, antlr4) and a
# gzipped MNIST copy, both ignored by git:
#     NNBASICS_DATA=../shared/data make gpu-pack
# Then on the device machine (the device tool's run, carrying .whl and gpu-data):
#     bash benchmarks/gpu.sh
# Everything it prints also goes to $OUT/gpu.txt (or /tmp/gpu.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp}/gpu.txt
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
if ! $PY -c "import hydra, omegaconf" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "gpu.sh: hydra-core is not installed and there is no .whl/ folder: run 'make gpu-pack' and carry .whl" >&2
        exit 2
    fi
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
if [ -z "${NNBASICS_DATA:-}" ] && [ -d gpu-data/MNIST/raw ]; then
    mkdir -p /tmp/nnbasics-data/MNIST/raw
    for f in gpu-data/MNIST/raw/*.gz; do gunzip -c "$f" > "/tmp/nnbasics-data/MNIST/raw/$(basename "$f" .gz)"; done
    export NNBASICS_DATA=/tmp/nnbasics-data
fi
export NNBASICS_SHARED_DATA=${NNBASICS_DATA:-../shared/data}
export PYTHONUNBUFFERED=1
{
    $PY -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
          '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
    echo "== CUDA tests, and the population tests on the GPU (device=auto picks it)"
    timeout 300 $PY -m pytest -q -p no:cacheprovider -m "cuda or not slow" tests/test_cuda.py tests/test_population.py
    echo "== population of 16 vs the same 16 runs one by one, 784-W-W-10 on MNIST, on the GPU"
    if $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        timeout 240 $PY benchmarks/population_width.py --members 16 --widths 256 1024 4096 --steps 300 --repeats 2 \
            -- device=cuda
    else
        echo "no CUDA device here: the GPU benchmark is skipped"
    fi
} 2>&1 | tee "$LOG"
