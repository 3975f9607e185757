"""Atomic run stores, show, netCDF export, and damage found (deleted, truncated, garbage chunks and metadata)."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from plasticity.cli import main
from plasticity.errors import ConfigError
from plasticity.experiment import parse_experiment
from plasticity.protocols import run_protocol
from plasticity.storage import describe_store, export_netcdf, netcdf_attrs, open_store, verify_store, write_run
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
    # The swept values stand where the parameter's default would; results over the done points.
    assert "a sweep of protocol 'sweep_protocols:gated' over x (3), repeat (2): 6 points" in text
    assert "  x: swept over 0, 1, 2 (3 values)" in text and '  gate = ""' in text
    y = xr.open_zarr(sweep_store)["y"].values
    done = ~np.isnan(y)
    assert f"mean {np.mean(y[done]):.4g}, range {np.min(y[done]):.4g} to {np.max(y[done]):.4g} over 3 x x 2 repeat" \
        in text


def test_describe_store_summarises_a_run_with_long_names_units_and_final_values(tmp_path):
    time = np.arange(1, 4) * 10.0
    dataset = xr.Dataset(
        {"overlap": (("time", "trial"), [[0.1, 0.3], [0.5, 0.7], [0.9, 1.0]], {"long_name": "overlap m", "units": "1"}),
         "success": ("trial", [True, False]),
         "energy": ((), -3.5)},
        coords={"time": time},
        attrs={"protocol": "demo", "params": json.dumps({"n": 4, "rule": "hebbian"}), "backend": "numpy"},
    )
    path = write_run(dataset, tmp_path / "r.zarr")
    text = describe_store(path)
    assert "a single run of protocol 'demo'" in text and '  rule = "hebbian"' in text and "settings: backend numpy" in text
    assert "  overlap: overlap m [1] (time, trial) float64\n      final (time 30.0): mean 0.95, range 0.9 to 1 over 2 trial" \
        in text
    assert "  success (trial) bool\n      fraction true 0.5 over 2 trial" in text
    assert "  energy () float64\n      -3.5" in text


# ----------------------------------------------------------------------------- damage


NOISY = """
protocol = "sweep_protocols:noisy_mean"
backend = "numpy"
seed = 4
[params]
n = 6
[sweep]
mu = [0.0, 1.0, 2.0]
repeats = 2
"""


@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    path = tmp_path_factory.mktemp("intact") / "s.zarr"
    run_sweep(parse_experiment(NOISY), path, workers=0, progress=False)
    return path


@pytest.fixture
def damaged(intact, tmp_path):
    path = tmp_path / "s.zarr"
    shutil.copytree(intact, path)
    return path


def _data(path):
    return xr.open_zarr(path)[["samples", "sample_mean"]].load()


def _truncate(file):
    file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])


# A truncated or overwritten chunk may decode (blosc stores small chunks uncompressed) or not.
@pytest.mark.parametrize("damage, reason", [
    (lambda chunk: chunk.unlink(), r"chunk \S*/samples/1\.0\.0 is missing"),
    (_truncate, r"samples/1\.0\.0 is unreadable|checksum mismatch.*/samples/1\.0\.0"),
    (lambda chunk: chunk.write_bytes(os.urandom(len(chunk.read_bytes()))),
     r"samples/1\.0\.0 is unreadable|checksum mismatch.*/samples/1\.0\.0"),
])
def test_a_damaged_chunk_is_found_by_verify_and_recomputed_by_resume(intact, damaged, damage, reason, capsys):
    damage(damaged / "samples" / "1.0.0")  # the point mu=1.0, repeat=0
    found, checked = verify_store(damaged)
    assert checked == 6 and [(index, label) for index, label, _ in found] == [(2, "mu=1.0, repeat=0")]
    assert re.search(reason, found[0][2])
    assert main(["show", str(damaged), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "verified: 5 of 6 done points read back as written" in out and re.search(reason, out)
    summary = run_sweep(parse_experiment(NOISY), damaged, resume=True, workers=0, progress=False)
    assert (summary.ran, summary.done) == (1, 6) and [index for index, _, _ in summary.repaired] == [2]
    assert "recomputed 1 damaged point:" in str(summary)
    xr.testing.assert_equal(_data(damaged), _data(intact))
    assert verify_store(damaged) == ([], 6)


def test_a_value_changed_in_place_fails_its_checksum(damaged):
    group = zarr.open_group(damaged, mode="r+", use_consolidated=False)
    group["sample_mean"][0, 1] = 123.0
    found, _ = verify_store(damaged)
    assert [index for index, _, _ in found] == [1] and "checksum mismatch" in found[0][2]


def test_deleted_array_metadata_is_a_clear_error_naming_the_file(damaged, capsys):
    (damaged / "samples" / ".zarray").unlink()
    for action in (lambda: open_store(damaged), lambda: verify_store(damaged),
                   lambda: run_sweep(parse_experiment(NOISY), damaged, resume=True, workers=0, progress=False)):
        with pytest.raises(ConfigError, match=r"damaged: the metadata file .*samples/\.zarray .* is missing"):
            action()
    assert main(["show", str(damaged)]) == 2
    assert "samples/.zarray" in capsys.readouterr().err


def test_an_array_missing_from_metadata_and_disk_is_found_from_the_signature(damaged):
    shutil.rmtree(damaged / "samples")
    zarr.consolidate_metadata(damaged, zarr_format=2)  # as a later writer would
    with pytest.raises(ConfigError, match=r"the array 'samples' it was written with has no metadata file"):
        open_store(damaged)


@pytest.mark.parametrize("name", [".zattrs", ".zmetadata", "samples/.zattrs", "done/.zarray"])
def test_a_truncated_metadata_file_is_a_clear_error_naming_it(damaged, name):
    _truncate(damaged / name)
    with pytest.raises(ConfigError, match=rf"metadata file .*{re.escape(name)} is not valid JSON"):
        open_store(damaged)


@pytest.mark.parametrize("damage", [_truncate, lambda chunk: chunk.unlink()])
def test_verify_of_a_single_run_checks_every_variable(tmp_path, damage):
    path = write_run(_run(), tmp_path / "r.zarr")
    assert verify_store(path) == ([], 1)
    damage(path / "samples" / "0")
    with pytest.raises(ConfigError, match="variable 'samples' (does not read back|differs from what was written)"):
        verify_store(path)


def test_a_subgroup_is_checked_and_accepted(damaged):
    group = zarr.open_group(damaged, mode="r+", zarr_format=2)
    group.create_group("ranking").create_array("score", shape=(3,), dtype="f8")
    zarr.consolidate_metadata(damaged, zarr_format=2)
    assert open_store(damaged).sizes["mu"] == 3
    _truncate(damaged / "ranking" / "score" / ".zarray")
    with pytest.raises(ConfigError, match=r"ranking/score/\.zarray is not valid JSON"):
        open_store(damaged)
