"""Upgrades do not break the import: each piece of the numba backend's fast path, missing.

The fast path binds Intel MKL's symbols out of torch's ``libtorch_cpu`` and reads numba's thread
count through the functions numba's threading layer registers with LLVM. A new torch or numba
may lack either; each case is simulated in a fresh interpreter (the binding happens at import),
which must import the package, warn once saying why, and compute on numba what numpy computes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from plasticity.backends import blas

_PROBE = """
import json, warnings
import numpy as np
PATCH
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import plasticity as pl
    from plasticity.backends import blas
def run(backend):
    pre = pl.Population(6, init={"x": pl.init.uniform(-1, 1)}, name="pre")
    post = pl.Population(5, ["y = tanh(I)"], name="post")
    network = pl.Network([pre, post], [pl.Projection(pre, post, "oja", shared=True, name="p")])
    simulation = pl.Simulation(network, backend=backend, trials=4, dtype="float64", seed=1)
    simulation.advance(5)
    return simulation.get("p.w")
difference = float(np.max(np.abs(run("numba") - run("numpy"))))
warned = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning) and "plasticity" in str(w.message)]
print(json.dumps({"blas": blas.BLAS, "fallback": blas.FALLBACK, "warnings": warned, "difference": difference,
                  "threads": int(blas.threads())}))
"""

_NO_TORCH_LIBRARY = """
import importlib.util
_find = importlib.util.find_spec
importlib.util.find_spec = lambda name, *rest: None if name == "torch" else _find(name, *rest)
"""

_MKL_SYMBOL_MISSING = """
import ctypes
class _Library(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "MKL_Set_Num_Threads_Local":
            raise AttributeError(name)
        return super().__getattr__(name)
ctypes.CDLL = _Library
"""

_NUMBA_PRIVATE_READ_MISSING = """
import numba.np.ufunc.parallel as parallel
del parallel._iget_num_threads
"""

_NUMBA_LAUNCH_MISSING = """
import numba.np.ufunc.parallel as parallel
del parallel._launch_threads  # numba's own get_num_threads, which calls it, then fails too
"""

_THREADING_SYMBOLS_MISSING = """
import llvmlite.binding as llvm
_address = llvm.address_of_symbol
llvm.address_of_symbol = lambda name: None if name == "get_num_threads" else _address(name)
"""

_MKL_HERE = blas.BLAS.startswith("MKL") and blas.MKL_EXPECTED


def _probe(patch: str) -> dict:
    code = _PROBE.replace("PATCH", patch)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PLASTICITY_BLAS": "auto"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not _MKL_HERE, reason="MKL is not the fast path on this machine")
@pytest.mark.parametrize(
    "patch, reason",
    [(_NO_TORCH_LIBRARY, "the installed torch has no libtorch_cpu library"),
     (_MKL_SYMBOL_MISSING, "does not export MKL's MKL_Set_Num_Threads_Local")],
    ids=["no libtorch_cpu", "MKL symbol missing"],
)
def test_without_mkl_the_package_runs_on_scipys_blas_with_one_warning(patch, reason):
    outcome = _probe(patch)
    assert "scipy" in outcome["blas"] and reason in outcome["fallback"]
    assert len(outcome["warnings"]) == 1 and reason in outcome["warnings"][0]
    assert outcome["difference"] < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize(
    "patch, reason",
    [(_NUMBA_LAUNCH_MISSING, "threading layer did not start (NameError"),
     (_THREADING_SYMBOLS_MISSING, "threading layer does not register get_num_threads with LLVM")],
    ids=["_launch_threads missing", "threading symbol missing"],
)
def test_without_numbas_thread_count_the_package_runs_on_one_thread_and_scipys_blas(patch, reason):
    outcome = _probe(patch)
    assert "scipy" in outcome["blas"] and outcome["threads"] == 1
    assert len(outcome["warnings"]) == 1 and reason in outcome["warnings"][0]
    assert "compiled kernels on one thread" in outcome["warnings"][0]
    assert outcome["difference"] < 1e-12


@pytest.mark.slow
def test_numbas_private_thread_count_read_is_not_needed():
    """``numba.np.ufunc.parallel._iget_num_threads`` (private) may go: nothing imports it."""
    outcome = _probe(_NUMBA_PRIVATE_READ_MISSING)
    assert outcome["blas"] == blas.BLAS and outcome["fallback"] is None and outcome["warnings"] == []
    assert outcome["difference"] < 1e-12
