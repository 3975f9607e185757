"""The package's OpenMP wait default (plasticity/_threads.py): passive unless the user chose."""

import os
import subprocess
import sys

from plasticity import _threads
from plasticity._threads import DEFAULT_WAIT_POLICY, WAIT_VARIABLES, apply_thread_defaults


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
