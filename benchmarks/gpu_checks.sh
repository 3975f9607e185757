#!/usr/bin/env bash
# The checks that need a CUDA device, in one go (a few minutes on an H100 machine): the
# GPU-marked tests (torch backend against the numpy reference on CUDA, in-place memory, the
# associative memories on CUDA) and the CUDA half of the torch benchmark, which it writes into
# benchmarks/results/torch.json and torch.md beside the CPU half measured elsewhere.
# Run it from the repository root of an environment with the package installed.
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_checks.sh: no CUDA device')" || exit 1
status=0
# only the modules that hold GPU tests, so the sweep tests' extra dependencies need not be there
python -m pytest -q -p no:cacheprovider -m gpu -rs $(grep -l "mark.gpu" tests/test_*.py) || status=1
python benchmarks/bench_torch.py --part cuda || status=1
exit "$status"
