"""Cross-backend agreement: the helper a model opts into with one line.

Every backend must reproduce the numpy reference. A model's test adds::

    from backends import assert_backends_agree

    def test_my_model_backends_agree():
        assert_backends_agree(make_network, steps=100, inputs={"inp.x": X}, trials=3)

It runs the network built by ``make_network()`` for ``steps`` steps on numpy and on every
other backend that imports here (numba, torch on the CPU), in float64 and float32, recording
every state variable, and compares each with the reference: float64 to 1e-10 and float32 to
1e-4 relative error. The relative error of a variable is ``max|a - b| / max|b|`` over all
its recorded values (relative to the variable's scale, so values crossing zero are fine).

Protocols opt in with :func:`assert_protocol_backends_agree`, which compares every data
variable of the datasets the protocol returns.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np
import xarray as xr

import plasticity as pl
from plasticity.backends import available_backends

__all__ = [
    "TOLERANCES",
    "OTHER_BACKENDS",
    "other_backends",
    "relative_error",
    "assert_close",
    "assert_backends_agree",
    "assert_protocol_backends_agree",
]

#: Largest relative error against the numpy reference, by dtype.
TOLERANCES = {"float64": 1e-10, "float32": 1e-4}

#: The backends compared with numpy, whether or not they are available here.
OTHER_BACKENDS = ("numba", "torch")


def other_backends() -> list[str]:
    """The backends other than numpy that import on this machine."""
    present = available_backends()
    return [name for name in OTHER_BACKENDS if name in present]


def relative_error(actual: Any, expected: Any) -> float:
    """``max|actual - expected| / max|expected|`` (absolute error where expected is all zero)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shapes differ: {actual.shape} != {expected.shape}")
    if actual.size == 0:
        return 0.0
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    if same.all():
        return 0.0
    difference = np.where(same, 0.0, np.abs(actual - expected))
    scale = np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0)
    return float(np.max(difference) / scale) if scale > 0 else float(np.max(difference))


def assert_close(actual: Any, expected: Any, dtype: str, what: str) -> None:
    """Fail unless ``actual`` matches ``expected`` within :data:`TOLERANCES` [``dtype``]."""
    error = relative_error(actual, expected)
    if not error <= TOLERANCES[dtype]:
        raise AssertionError(f"{what}: relative error {error:.3g} exceeds {TOLERANCES[dtype]:g} ({dtype})")


def _run(make_network, backend, dtype, *, steps, trials, inputs, record, seed, dt, plastic, device):
    network = make_network() if callable(make_network) else make_network
    simulation = pl.Simulation(
        network, trials=trials, backend=backend, seed=seed, dtype=dtype, dt=dt,
        device=device if backend == "torch" else None,
    )
    chosen = dict(record) if record is not None else dict.fromkeys(simulation.shapes, max(1, steps // 10))
    run = simulation.run(steps, inputs=dict(inputs or {}), record=chosen, plastic=plastic)
    final = {key: simulation.get(key) for key in simulation.shapes}
    return run, final


def assert_backends_agree(
    make_network: Callable[[], pl.Network] | pl.Network,
    *,
    steps: int = 100,
    trials: int = 2,
    inputs: Mapping[str, Any] | None = None,
    record: Mapping[str, int] | None = None,
    seed: int = 0,
    dt: float = 1.0,
    plastic: bool | Iterable[str] = True,
    dtypes: Iterable[str] = ("float64", "float32"),
    backends: Iterable[str] | None = None,
    device: str = "cpu",
) -> None:
    """Run the network on numpy and on ``backends`` (default: all others present) and compare.

    ``record`` defaults to every state variable every ``steps // 10`` steps; the final state
    is always compared too. ``device`` is the torch device (default the CPU).
    """
    chosen = list(backends) if backends is not None else other_backends()
    options = dict(steps=steps, trials=trials, inputs=inputs, record=record, seed=seed, dt=dt, plastic=plastic, device=device)
    for dtype in dtypes:
        expected_run, expected_final = _run(make_network, "numpy", dtype, **options)
        for backend in chosen:
            run, final = _run(make_network, backend, dtype, **options)
            for key in expected_run.data_vars:
                assert_close(run[key].values, expected_run[key].values, dtype, f"{backend} {key} (recorded)")
            for key, value in expected_final.items():
                assert_close(final[key], value, dtype, f"{backend} {key} (final state)")


def assert_protocol_backends_agree(
    name: str,
    params: Mapping[str, Any],
    *,
    seed: int = 0,
    dtypes: Iterable[str] = ("float64", "float32"),
    backends: Iterable[str] | None = None,
    device: str | None = "cpu",
) -> None:
    """Run protocol ``name`` with ``params`` on numpy and on ``backends``; compare every variable."""
    chosen = list(backends) if backends is not None else other_backends()
    for dtype in dtypes:
        expected = pl.run_protocol(name, dict(params), backend="numpy", seed=seed, dtype=dtype)
        for backend in chosen:
            dataset = pl.run_protocol(
                name, dict(params), backend=backend, seed=seed, dtype=dtype, device=device if backend == "torch" else None
            )
            _compare_datasets(dataset, expected, dtype, f"protocol {name} on {backend}")


def _compare_datasets(actual: xr.Dataset, expected: xr.Dataset, dtype: str, what: str) -> None:
    if set(actual.data_vars) != set(expected.data_vars):
        raise AssertionError(f"{what}: variables {sorted(actual.data_vars)} != {sorted(expected.data_vars)}")
    for key in expected.data_vars:
        if actual[key].dims != expected[key].dims:
            raise AssertionError(f"{what}: {key} has dims {actual[key].dims}, expected {expected[key].dims}")
        if np.issubdtype(expected[key].dtype, np.number) or expected[key].dtype == bool:
            assert_close(actual[key].values, expected[key].values, dtype, f"{what}: {key}")
        else:
            np.testing.assert_array_equal(actual[key].values, expected[key].values, err_msg=f"{what}: {key}")
