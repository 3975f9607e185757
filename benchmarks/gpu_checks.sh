#!/usr/bin/env bash
# The checks that need a CUDA device, in one go (a few minutes on an H100 machine, more the first
# time: on CUDA the torch backend compiles each separable update with torch.compile): the
# GPU-marked tests (torch backend against the numpy reference on CUDA, the default compiled
# update, in-place memory, the associative memories on CUDA) and the CUDA half of the torch
# benchmark, which it writes into benchmarks/results/torch.json and torch.md beside the CPU half
# measured elsewhere: the Oja step at N = 16384 (default settings, and eager) against the
# device's copy bandwidth measured in the same run, target >= 0.8x for the default step.
# Exit status: 0 all passed and the target met, 1 a test or the benchmark failed, 2 only the
# bandwidth target missed.
# Run it from the repository root of an environment with the package installed.
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_checks.sh: no CUDA device')" || exit 1
status=0
# only the modules that hold GPU tests, so the sweep tests' extra dependencies need not be there
python -m pytest -q -p no:cacheprovider -m gpu -rs $(grep -l "mark.gpu" tests/test_*.py) || status=1
python benchmarks/bench_torch.py --part cuda || status=1
if [ "$status" -eq 0 ]; then
    python - <<'PY' || status=2
import json, sys
cuda = json.load(open("benchmarks/results/torch.json"))["cuda"]
ratio, target = cuda["oja_default_vs_copy"], cuda["target_vs_copy"]
print(f"gpu_checks.sh: Oja step at N = {cuda['n']} on {cuda['device']}: {ratio:.2f}x the copy bandwidth "
      f"(eager {cuda['oja_eager_vs_copy']:.2f}x); target >= {target}x: {'met' if ratio >= target else 'NOT met'}")
sys.exit(0 if ratio >= target else 1)
PY
fi
exit "$status"
