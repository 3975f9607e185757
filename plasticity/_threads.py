"""The package's OpenMP default: threads that wait for work sleep instead of spinning.

numba's threaded kernels (its ``omp`` threading layer) and MKL's matrix products run on one GNU
OpenMP runtime (see :mod:`plasticity.backends.blas`). By default that runtime lets a thread that
waits for the next parallel region spin for about 3 ms before it sleeps; on a machine where
another program holds a core, the spinning threads take the time the working ones need, and a
threaded kernel waits for a thread the scheduler has not run. Measured with a competing process
spinning on one of 2 cores (``benchmarks/README.md``, "Predictive coding under load: thread
settings"): predictive-coding training kept a fraction of its rate with spinning threads and all
of it with sleeping ones (``OMP_WAIT_POLICY=PASSIVE``), and a synchronous Hopfield recall step
lost most of its time to a population kernel waiting for its second thread.

So, unless the user chose a wait behaviour (any of :data:`WAIT_VARIABLES` in the environment,
``GOMP_SPINCOUNT=300000`` giving back libgomp's own default), ``import plasticity`` sets
``OMP_WAIT_POLICY=PASSIVE`` in the environment, which the OpenMP runtime reads once, when it is
loaded. It is loaded later by the package (numba's threading layer, torch's library), so the
setting takes effect, unless a program loaded a runtime before importing plasticity (``import
torch`` first, say): then the runtime keeps what it read, and :func:`thread_defaults` says so.
Subprocesses (sweep workers) inherit the setting.
"""

from __future__ import annotations

import os

__all__ = ["WAIT_VARIABLES", "DEFAULT_WAIT_POLICY", "apply_thread_defaults", "thread_defaults"]

#: Environment variables by which a user chooses how OpenMP threads wait: the standard one, GNU
#: OpenMP's spin count and Intel/LLVM OpenMP's block time. Any of them set: the package sets nothing.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
DEFAULT_WAIT_POLICY = "PASSIVE"

#: What :func:`apply_thread_defaults` did when the package was imported, in words.
_DONE = "not set"


def _runtime_loaded() -> bool:
    """Whether an OpenMP runtime is already loaded in this process (Linux: its mapped libraries)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any(name in line for line in maps for name in ("libgomp", "libiomp", "libomp"))
    except OSError:
        return False


def apply_thread_defaults(environ=os.environ, runtime_loaded=_runtime_loaded) -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` unless one of :data:`WAIT_VARIABLES` is set
    (see the module); what was done, in words, also kept for :func:`thread_defaults`."""
    global _DONE
    chosen = [f"{name}={environ[name]}" for name in WAIT_VARIABLES if name in environ]
    if chosen:
        _DONE = f"set by the user ({', '.join(chosen)})"
    elif runtime_loaded():
        environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY  # for subprocesses
        _DONE = (f"OMP_WAIT_POLICY={DEFAULT_WAIT_POLICY} set, but an OpenMP runtime was loaded before plasticity "
                 "was imported and keeps the wait policy it read then")
    else:
        environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
        _DONE = f"OMP_WAIT_POLICY={DEFAULT_WAIT_POLICY} (the package's default)"
    return _DONE


def thread_defaults() -> str:
    """How OpenMP threads wait in this process, as :func:`apply_thread_defaults` found and set it
    (the ``openmp_wait`` provenance attribute)."""
    return _DONE
