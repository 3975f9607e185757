"""A sweep point's chunks written directly (plasticity.zarr_chunks) give the files zarr writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from plasticity.errors import ConfigError
from plasticity.storage import ZARR_FORMAT
from plasticity.zarr_chunks import PointChunks
from reference import zarr_point_write

SHAPE = (3, 2)  # two swept dimensions
INNER = 4
#: name -> (dtype, dims after the swept ones, xarray's _FillValue or "default")
VARIABLES = {
    "float": (np.float64, ("inner",), "default"),  # NaN fill
    "float32": (np.float32, (), "default"),
    "float_zero": (np.float64, ("inner",), 0.0),
    "integer": (np.int64, ("inner",), None),  # null fill: zarr's default, 0
    "checksum": (np.uint64, (), None),
    "flag": (bool, (), None),
    "complex": (np.complex128, ("inner",), None),
    "message": (object, (), None),
}


def _store(path: Path) -> dict[str, zarr.Array]:
    """A store laid out as a sweep store: one chunk per point, whole along the rest, values unset."""
    dims = ("x", "y")
    variables, encoding = {}, {}
    for name, (dtype, inner, fill) in VARIABLES.items():
        shape = SHAPE + (INNER,) * len(inner)
        data = np.full(shape, "" if dtype is object else 0, dtype=dtype)
        variables[name] = xr.Variable(dims + inner, data)
        encoding[name] = {"chunks": (1, 1) + (INNER,) * len(inner)}
        if fill != "default":
            encoding[name]["_FillValue"] = fill
    xr.Dataset(variables).to_zarr(path, mode="w-", compute=True, zarr_format=ZARR_FORMAT, encoding=encoding)
    for name in VARIABLES:  # start from absent chunks, as a new sweep store does
        for chunk in (path / name).iterdir():
            if not chunk.name.startswith("."):
                chunk.unlink()
    group = zarr.open_group(path, mode="r+", zarr_format=ZARR_FORMAT)
    return dict(group.arrays())


def _value(name: str, rng: np.random.Generator, kind: str):
    dtype, inner, _ = VARIABLES[name]
    shape = (INNER,) * len(inner)
    if kind == "fill":  # what an absent chunk reads as
        return np.full(shape, {"float": np.nan, "float32": np.nan, "message": ""}.get(name, 0), dtype=dtype)
    if kind == "negative zero":  # -0.0 where the dtype has one: kept against a real zero fill, dropped against 0j
        if dtype is object:
            return "-0"
        return np.full(shape, -0.0, dtype=dtype) if np.dtype(dtype).kind in "fc" else np.zeros(shape, dtype)
    if dtype is object:
        return rng.choice(["", "ValueError: load must be in (0, 1]", "naïve ü"])
    if dtype is bool:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    value = rng.standard_normal(shape).astype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        value = value + 1j * rng.standard_normal(shape)
    if np.ndim(value) and kind == "with nan":
        value[rng.random(shape) < 0.5] = np.nan
    return value


def _files(path: Path) -> dict[str, bytes]:
    return {str(file.relative_to(path)): file.read_bytes() for file in sorted(path.rglob("*")) if file.is_file()}


def test_point_writes_give_the_files_zarr_writes(tmp_path):
    direct_arrays, reference_arrays = _store(tmp_path / "direct.zarr"), _store(tmp_path / "zarr.zarr")
    writers = {name: PointChunks(tmp_path / "direct.zarr" / name, direct_arrays[name], len(SHAPE)) for name in VARIABLES}
    rng = np.random.default_rng(3)
    positions = [(x, y) for x in range(SHAPE[0]) for y in range(SHAPE[1])]
    kinds = ["random", "with nan", "fill", "negative zero", "random", "fill"]
    # Every point written twice: a value, then another (a fill value removes the chunk written before).
    for round_ in range(2):
        for position, kind in zip(positions, kinds[round_:] + kinds[:round_]):
            for name in VARIABLES:
                value = _value(name, rng, kind)
                writers[name].write(position, value)
                zarr_point_write(reference_arrays[name], position, value)
    direct, reference = _files(tmp_path / "direct.zarr"), _files(tmp_path / "zarr.zarr")
    assert sorted(direct) == sorted(reference)
    assert [key for key in direct if direct[key] != reference[key]] == []
    stored = xr.open_zarr(tmp_path / "direct.zarr").load()
    xr.testing.assert_identical(stored, xr.open_zarr(tmp_path / "zarr.zarr").load())
    # Not everything was the fill value: the comparison saw chunks written as well as removed.
    assert 0 < sum(not key.rsplit("/", 1)[-1].startswith(".") for key in direct) < len(VARIABLES) * len(positions)


def test_an_array_not_chunked_one_point_at_a_time_is_refused(tmp_path):
    xr.Dataset({"v": (("x", "inner"), np.zeros((4, 6)))}).to_zarr(
        tmp_path / "s.zarr", zarr_format=ZARR_FORMAT, encoding={"v": {"chunks": (2, 6)}})
    array = zarr.open_group(tmp_path / "s.zarr", mode="r+", zarr_format=ZARR_FORMAT)["v"]
    with pytest.raises(ConfigError, match=r"chunks \(2, 6\) for shape \(4, 6\); a sweep store keeps one point per chunk"):
        PointChunks(tmp_path / "s.zarr" / "v", array, 1)
