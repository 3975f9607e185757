"""The package's thread defaults (plasticity/_threads.py): OpenMP threads wait passively and OpenBLAS's
spin briefly, unless the user chose."""

import os
import subprocess
import sys

import pytest

from plasticity import _threads
from plasticity._threads import (DEFAULT_OPENBLAS_TIMEOUT, DEFAULT_WAIT_POLICY, OPENBLAS_TIMEOUT_VARIABLE, WAIT_VARIABLES,
                                 apply_openblas_default, apply_thread_defaults)


def _restore(done):
    _threads._DONE = done


def test_nothing_set_gives_passive_wait():
    before = _threads._DONE
    environ = {"PATH": "/bin"}
    try:
        done = apply_thread_defaults(environ, runtime_loaded=lambda: False)
        assert environ["OMP_WAIT_POLICY"] == DEFAULT_WAIT_POLICY == "PASSIVE"
        assert _threads.thread_defaults() == done == "OMP_WAIT_POLICY=PASSIVE (the package's default)"
    finally:
        _restore(before)


def test_any_wait_variable_of_the_user_is_kept_and_nothing_added():
    before = _threads._DONE
    try:
        for name in WAIT_VARIABLES:
            environ = {name: "300000"}
            done = apply_thread_defaults(environ, runtime_loaded=lambda: False)
            assert environ == {name: "300000"}
            assert done == f"set by the user ({name}=300000)"
    finally:
        _restore(before)


def test_a_runtime_loaded_before_import_is_reported():
    before = _threads._DONE
    environ = {}
    try:
        done = apply_thread_defaults(environ, runtime_loaded=lambda: True)
        assert environ["OMP_WAIT_POLICY"] == "PASSIVE"  # subprocesses still get it
        assert "loaded before plasticity was imported" in done
    finally:
        _restore(before)


def test_import_sets_it_before_the_runtime_loads_and_provenance_says_so():
    env = {key: value for key, value in os.environ.items() if key not in WAIT_VARIABLES}
    code = ("import os, plasticity\nfrom plasticity.provenance import base_attrs\nimport numba\nnumba.get_num_threads()\n"
            "print(os.environ['OMP_WAIT_POLICY'], '|', base_attrs(backend='numba', dtype='float32', seed=0)['openmp_wait'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "PASSIVE | OMP_WAIT_POLICY=PASSIVE (the package's default)"


def _restore_openblas(done):
    _threads._OPENBLAS_DONE = done


def test_nothing_set_gives_the_short_openblas_timeout_and_restarts_every_loaded_pool():
    before = _threads._OPENBLAS_DONE
    environ, restarted = {"PATH": "/bin"}, []

    def restart(path):
        restarted.append((path, environ[OPENBLAS_TIMEOUT_VARIABLE]))  # the variable is set first
        return True

    try:
        done = apply_openblas_default(environ, loaded=lambda: ["/lib/a_openblas.so", "/lib/b_openblas.so"],
                                      restart=restart, only_thread=lambda: True)
        assert environ[OPENBLAS_TIMEOUT_VARIABLE] == DEFAULT_OPENBLAS_TIMEOUT == "18"
        assert restarted == [("/lib/a_openblas.so", "18"), ("/lib/b_openblas.so", "18")]
        assert _threads.openblas_default() == done == "OPENBLAS_THREAD_TIMEOUT=18 (the package's default)"
    finally:
        _restore_openblas(before)


def test_the_users_openblas_timeout_is_kept_and_no_pool_restarted():
    before = _threads._OPENBLAS_DONE
    environ = {OPENBLAS_TIMEOUT_VARIABLE: "28"}
    try:
        done = apply_openblas_default(environ, loaded=lambda: ["/lib/a_openblas.so"],
                                      restart=lambda path: pytest.fail("restarted a pool the user configured"))
        assert environ == {OPENBLAS_TIMEOUT_VARIABLE: "28"}
        assert done == "set by the user (OPENBLAS_THREAD_TIMEOUT=28)"
    finally:
        _restore_openblas(before)


def test_a_loaded_openblas_that_cannot_reread_is_named():
    before = _threads._OPENBLAS_DONE
    try:
        done = apply_openblas_default({}, loaded=lambda: ["/lib/old_openblas.so"], restart=lambda path: False,
                                      only_thread=lambda: True)
        assert done == ("OPENBLAS_THREAD_TIMEOUT=18 (the package's default); old_openblas.so, loaded before "
                        "plasticity was imported, keeps its own (could not re-read it)")
    finally:
        _restore_openblas(before)


def test_no_pool_is_stopped_while_other_threads_run():
    before = _threads._OPENBLAS_DONE
    environ = {}
    try:
        done = apply_openblas_default(environ, loaded=lambda: ["/lib/a_openblas.so"],
                                      restart=lambda path: pytest.fail("stopped a pool other threads may be using"),
                                      only_thread=lambda: False)
        assert environ[OPENBLAS_TIMEOUT_VARIABLE] == "18"  # for libraries loaded later and subprocesses
        assert done.endswith("a_openblas.so, loaded before plasticity was imported, keeps its own (other threads "
                             "were running when plasticity was imported)")
    finally:
        _restore_openblas(before)


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="counts threads in /proc (Linux)")
def test_numpys_openblas_loaded_first_takes_the_timeout_and_keeps_its_threads():
    """The usual order, numpy before plasticity: the pool numpy's OpenBLAS started spinning-long is
    stopped, re-reads the variable, and starts its threads again at the next product."""
    env = {key: value for key, value in os.environ.items() if key != OPENBLAS_TIMEOUT_VARIABLE}
    env["OPENBLAS_NUM_THREADS"] = "2"
    code = (
        "import ctypes, os\nimport numpy as np\n"
        "a = np.arange(360000.0).reshape(600, 600) % 7\nexpected = a @ a\n"
        "import plasticity\nfrom plasticity._threads import _loaded_openblas\n"
        "from plasticity.provenance import base_attrs\n"
        "threads = lambda: len(os.listdir('/proc/self/task'))\n"
        "numpys = [path for path in _loaded_openblas() if 'numpy' in path]\n"
        "library = ctypes.CDLL(numpys[0], mode=os.RTLD_NOLOAD)\n"
        "idle = threads()\nagain = a @ a\n"
        "print(library.openblas_thread_timeout(), threads() - idle, bool((again == expected).all()), '|',\n"
        "      base_attrs(backend='numba', dtype='float32', seed=0)['openblas_wait'])"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if "IndexError" in result.stderr:
        pytest.skip("numpy here is not built on an OpenBLAS of its own")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "18 1 True | OPENBLAS_THREAD_TIMEOUT=18 (the package's default)"
