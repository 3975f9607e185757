"""The runtime (a backend resolved once) and the registry of named fast paths."""

import numpy as np
import pytest

import plasticity as pl
from plasticity.backends import runtime as rt


def test_resolve_checks_backend_device_and_dtype_once():
    numpy = rt.resolve("numpy")
    assert numpy.xp is np and numpy.device is None and not numpy.is_torch
    torch_cpu = rt.resolve("torch", "cpu", "float64")
    assert torch_cpu.is_torch and str(torch_cpu.device) == "cpu"
    assert torch_cpu.host(torch_cpu.array([1.0, 2.0])).dtype == np.float64
    with pytest.raises(pl.BackendError, match="valid backends: numpy, numba, torch"):
        rt.resolve("jax")
    with pytest.raises(pl.BackendError, match="runs on the CPU only"):
        rt.resolve("numba", "cuda:0")
    with pytest.raises(pl.ConfigError, match="dtype must be one of 'float32', 'float64'; got 'float16'"):
        rt.resolve("numpy", dtype="float16")


def test_a_fast_path_is_found_by_name_and_backend():
    @rt.register_fast_path("test.double", ("numpy", "numba"), description="x -> 2x", twin="2 * x")
    def double(x):
        return 2 * x

    try:
        assert rt.resolve("numba").fast_path("test.double")(3) == 6
        with pytest.raises(pl.BackendError, match="has no 'torch' implementation; it runs on numpy, numba"):
            rt.resolve("torch", "cpu").fast_path("test.double")
        with pytest.raises(pl.BackendError, match="unknown fast path 'test.triple'"):
            rt.fast_path("test.triple", "numpy")
        with pytest.raises(ValueError, match="registered twice"):
            rt.register_fast_path("test.double", "numpy", description="x -> 2x", twin="2 * x")(double)
    finally:
        rt._FAST_PATHS.pop("test.double")
