"""The package's thread defaults: OpenMP threads that wait for work sleep instead of spinning, and
OpenBLAS's idle threads sleep after a short spin.

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

OpenBLAS, the BLAS of numpy's and scipy's wheels, keeps a pool of threads of its own, and an idle
one spins until about 0.1 s after the last product (``OPENBLAS_THREAD_TIMEOUT=28``, in log2 of the
CPU's timestamp ticks). A model that multiplies with numpy and then runs the engine's kernels (a
memory's storage fast path, then recall) gives those kernels cores that OpenBLAS's threads are
spinning on: Vector-HaSH's protocols ran 1.6-2x slower so, and the Hopfield capacity with the
pseudo-inverse rule 9x (``benchmarks/README.md``, "OpenBLAS threads"). So, unless the user set it,
``import plasticity`` also sets ``OPENBLAS_THREAD_TIMEOUT=18`` (about 0.1 ms: back-to-back products
still find their threads awake), which an OpenBLAS loaded later reads when it loads. An OpenBLAS
that is already loaded (``import numpy`` first, the usual order) is made to re-read the environment
and to stop its threads, which it starts again, with the new setting, at its next threaded product;
this is done only when the importing thread is the process's only Python thread, as stopping a pool
that another thread is using can hang it.
"""

from __future__ import annotations

import os

__all__ = [
    "WAIT_VARIABLES", "DEFAULT_WAIT_POLICY", "apply_thread_defaults", "thread_defaults",
    "OPENBLAS_TIMEOUT_VARIABLE", "DEFAULT_OPENBLAS_TIMEOUT", "apply_openblas_default", "openblas_default",
]

#: Environment variables by which a user chooses how OpenMP threads wait: the standard one, GNU
#: OpenMP's spin count and Intel/LLVM OpenMP's block time. Any of them set: the package sets nothing.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
DEFAULT_WAIT_POLICY = "PASSIVE"

#: What :func:`apply_thread_defaults` did when the package was imported, in words.
_DONE = "not set"


def _mapped_files() -> set[str]:
    """Paths of the files mapped into this process: its loaded libraries (Linux; empty elsewhere)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            fields = [line.split(maxsplit=5) for line in maps]
    except OSError:
        return set()
    return {parts[5].strip() for parts in fields if len(parts) == 6 and parts[5].startswith("/")}


def _runtime_loaded() -> bool:
    """Whether an OpenMP runtime is already loaded in this process."""
    return any(name in path for path in _mapped_files() for name in ("libgomp", "libiomp", "libomp"))


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


#: OpenBLAS's setting of how long an idle thread of its pool spins before it sleeps, in log2 of the
#: CPU's timestamp ticks (clamped to 4-30; OpenBLAS's default, 28, is about 0.1 s).
OPENBLAS_TIMEOUT_VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
#: The package's value: 2^18 ticks, about 0.1 ms on a 2-3 GHz machine.
DEFAULT_OPENBLAS_TIMEOUT = "18"

#: What :func:`apply_openblas_default` did when the package was imported, in words.
_OPENBLAS_DONE = "not set"


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries loaded in this process."""
    return sorted(path for path in _mapped_files() if "openblas" in os.path.basename(path).lower())


def _restart_pool(path: str) -> bool:
    """Make the loaded OpenBLAS at ``path`` re-read the environment and stop its threads (it starts
    them again at its next threaded product); False where it has no functions for that."""
    import ctypes

    try:
        library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)  # only a library already loaded
    except OSError:
        return False
    if not all(hasattr(library, name) for name in ("openblas_read_env", "blas_thread_shutdown_")):
        return False
    library.openblas_read_env()
    library.blas_thread_shutdown_()
    return True


def _only_thread() -> bool:
    """Whether this is the process's only Python thread (so none of its threads is inside OpenBLAS)."""
    import threading

    return threading.active_count() == 1


def apply_openblas_default(environ=os.environ, loaded=_loaded_openblas, restart=_restart_pool,
                           only_thread=_only_thread) -> str:
    """Set ``OPENBLAS_THREAD_TIMEOUT=18`` in ``environ`` unless it is set, and have every OpenBLAS
    already loaded take it, when this is the process's only thread (see the module); what was
    done, in words, also kept for :func:`openblas_default`."""
    global _OPENBLAS_DONE
    if OPENBLAS_TIMEOUT_VARIABLE in environ:
        _OPENBLAS_DONE = f"set by the user ({OPENBLAS_TIMEOUT_VARIABLE}={environ[OPENBLAS_TIMEOUT_VARIABLE]})"
        return _OPENBLAS_DONE
    environ[OPENBLAS_TIMEOUT_VARIABLE] = DEFAULT_OPENBLAS_TIMEOUT
    _OPENBLAS_DONE = f"{OPENBLAS_TIMEOUT_VARIABLE}={DEFAULT_OPENBLAS_TIMEOUT} (the package's default)"
    libraries = loaded()
    if libraries and not only_thread():
        # stopping a pool that another thread is using can hang it: those keep their setting
        kept = [os.path.basename(path) for path in libraries]
        why = "other threads were running when plasticity was imported"
    else:
        kept = [os.path.basename(path) for path in libraries if not restart(path)]
        why = "could not re-read it"
    if kept:
        _OPENBLAS_DONE += f"; {', '.join(kept)}, loaded before plasticity was imported, keeps its own ({why})"
    return _OPENBLAS_DONE


def openblas_default() -> str:
    """How OpenBLAS's idle threads wait in this process, as :func:`apply_openblas_default` found and
    set it (the ``openblas_wait`` provenance attribute)."""
    return _OPENBLAS_DONE
