"""Atomic run stores, show and netCDF export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from plasticity.errors import ConfigError
from plasticity.experiment import parse_experiment
from plasticity.protocols import run_protocol
from plasticity.storage import describe_store, export_netcdf, netcdf_attrs, open_store, write_run
from plasticity.sweep import run_sweep


def _run(mu: float = 0.0) -> xr.Dataset:
    return run_protocol("sweep_protocols:noisy_mean", {"n": 6, "mu": mu}, backend="numpy", seed=1)


def test_write_run_is_atomic_and_replaces_an_old_store(tmp_path):
    path = tmp_path / "out" / "run.zarr"
    write_run(_run(0.0), path)
    first = xr.open_zarr(path).load()
    assert first.attrs["protocol"] == "sweep_protocols:noisy_mean"
    write_run(_run(5.0), path)
    second = xr.open_zarr(path).load()
    assert float(second["sample_mean"]) == pytest.approx(float(first["sample_mean"]) + 5.0, rel=1e-6)
    assert [p.name for p in path.parent.iterdir()] == ["run.zarr"]  # no temporary or old folder left


def test_write_run_refuses_to_replace_something_that_is_not_a_store(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is not a Zarr store"):
        write_run(_run(), target)
    assert (target / "notes.txt").read_text() == "keep me"


def test_open_store_names_a_missing_store(tmp_path):
    with pytest.raises(ConfigError, match="is not a Zarr store"):
        open_store(tmp_path / "missing.zarr")


def test_netcdf_attrs_are_strings_and_numbers():
    converted = netcdf_attrs({"a": "x", "b": 2, "c": 1.5, "d": True, "e": None, "f": {"k": [1, 2]}, "g": np.int64(3)})
    assert converted == {"a": "x", "b": 2, "c": 1.5, "d": "true", "e": "null", "f": '{"k": [1, 2]}', "g": 3}


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    experiment = parse_experiment(
        """
protocol = "sweep_protocols:gated"
backend = "numpy"
seed = 2
[sweep]
x = [0, 1, 2]
repeats = 2
"""
    )
    path = tmp_path_factory.mktemp("sweep") / "s.zarr"
    run_sweep(experiment, path, workers=0, progress=False)
    return path


def test_export_round_trip(sweep_store, tmp_path):
    out = export_netcdf(sweep_store, tmp_path / "s.nc")
    stored = xr.open_zarr(sweep_store).load()
    exported = xr.open_dataset(out, engine="h5netcdf").load()
    xr.testing.assert_equal(stored, exported)
    assert exported.attrs["sweep_dims"] == stored.attrs["sweep_dims"]
    assert json.loads(exported.attrs["config"])["sweep"] == {"x": [0, 1, 2]}
    assert exported["done"].dtype == bool and exported["point_error"].values[1, 0].startswith("RuntimeError")


def test_describe_store_shows_completion_failures_and_provenance(sweep_store):
    text = describe_store(sweep_store)
    assert "dimensions: x=3, repeat=2" in text
    assert "completion: 4 of 6 points done, 2 failed" in text
    assert "x=1, repeat=0: RuntimeError: odd x=1 needs the gate file" in text
    assert "protocol: sweep_protocols:gated" in text and "[sweep]" in text
