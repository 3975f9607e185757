"""Saved runs: atomic Zarr writes, opening, a text summary and netCDF export.

Stores are Zarr (format 2, consolidated metadata) with JSON-able attributes;
nothing is pickled. A single run is written to a temporary folder beside the
target and renamed into place, so the target is always either the old store or
the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError
from plasticity.integrity import check_metadata, check_unlocked, point_checksum, verify_points

__all__ = [
    "ZARR_FORMAT",
    "CHECKSUM_ATTR",
    "is_store",
    "replace_dir",
    "write_run",
    "open_store",
    "verify_store",
    "describe_store",
    "export_netcdf",
    "netcdf_attrs",
]

ZARR_FORMAT = 2


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a Zarr store (a folder with Zarr group metadata)."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in (".zgroup", "zarr.json"))


def replace_dir(source: Path, target: Path) -> None:
    """Move the finished folder ``source`` to ``target``, replacing an existing store there.

    ``target``, if present, must be a Zarr store (plasticity never deletes
    anything else). The old store is first renamed aside, then the new one is
    renamed in, then the old one is removed: a crash leaves either store whole.
    """
    source, target = Path(source), Path(target)
    if target.exists() and not is_store(target):
        raise ConfigError(f"{str(target)!r} exists and is not a Zarr store; refusing to replace it")
    if target.exists():
        check_unlocked(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


#: The attribute of each variable of a single run that holds the checksum of its values.
CHECKSUM_ATTR = "plasticity_checksum"


def write_run(dataset: xr.Dataset, path: str | Path) -> Path:
    """Write ``dataset`` to the Zarr store ``path`` atomically and return the path.

    Each data variable's attributes get its checksum (``plasticity_checksum``),
    which :func:`verify_store` checks.
    """
    path = Path(path)
    dataset = dataset.copy()
    for name, variable in dataset.data_vars.items():
        variable.attrs = {**variable.attrs, CHECKSUM_ATTR: f"{point_checksum({name: variable.values}):016x}"}
    if path.exists() and not is_store(path):
        raise ConfigError(f"output {str(path)!r} exists and is not a Zarr store; choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        dataset.to_zarr(temporary, mode="w", consolidated=True, zarr_format=ZARR_FORMAT)
        replace_dir(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return path


def open_store(path: str | Path) -> xr.Dataset:
    """Open a saved run or sweep store lazily; a clear error when it is missing or its metadata is
    damaged (naming the file)."""
    path = Path(path)
    if not is_store(path):
        raise ConfigError(f"{str(path)!r} is not a Zarr store (no such folder or no Zarr metadata)")
    check_metadata(path)
    return xr.open_zarr(path, consolidated=None)


def _point_label(dataset: xr.Dataset, dims: tuple[str, ...], position: tuple[int, ...]) -> str:
    return ", ".join(f"{dim}={dataset[dim].values[i].item()!r}" for dim, i in zip(dims, position))


def verify_store(path: str | Path) -> tuple[list[tuple[int, str, str]], int]:
    """Check a store's data against what was written: ``(damaged, checked)``.

    For a sweep store, every done point is read back and compared with the
    checksum stored with its done flag; ``damaged`` lists ``(point index,
    label, reason)``, the reason naming the chunk file. A single run is one
    point: each variable is read back and compared with the checksum in its
    attributes, and damage is a :class:`ConfigError` naming the variable, as
    is damaged metadata (naming the file).
    """
    path = Path(path)
    dataset = open_store(path)
    if dataset.attrs.get("store_kind") != "sweep":
        for name, variable in dataset.variables.items():
            try:
                values = variable.values
            except Exception as error:
                raise ConfigError(
                    f"store {str(path)!r} is damaged: variable {name!r} does not read back "
                    f"({type(error).__name__}: {error})"
                ) from None
            expected = variable.attrs.get(CHECKSUM_ATTR)
            if expected is not None and f"{point_checksum({name: values}):016x}" != expected:
                raise ConfigError(
                    f"store {str(path)!r} is damaged: variable {name!r} differs from what was written "
                    f"(checksum mismatch; its chunks are under {path / name})"
                )
        return [], 1
    dims = tuple(json.loads(dataset.attrs["sweep_dims"]))
    variables = list(json.loads(dataset.attrs.get("data_signature", '{"variables": {}}'))["variables"])
    damage, checked = verify_points(path, variables)
    return [(d.index, _point_label(dataset, dims, d.position), d.reason) for d in damage], checked


def _format_attr(value: Any, width: int = 100) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


#: Attributes ``show`` prints in their own sections, or not at all (internal bookkeeping).
_SHOWN_ELSEWHERE = ("experiment_toml", "params", "config", "data_signature", "sweep_dims")
#: Per-point bookkeeping of a sweep store (:data:`plasticity.sweep.BOOKKEEPING`).
_BOOKKEEPING = ("done", "failed", "point_error", "point_wall_time", "point_worker", "point_finished_at",
                "point_index", "point_checksum")


def _number(value: float) -> str:
    return f"{value:.4g}"


def _summary(variable: xr.DataArray, done: xr.DataArray | None) -> str:
    """The final value, or the mean and range, of ``variable`` (over done points only in a sweep)."""
    if variable.dtype.kind not in "biufc":
        return f"{variable.dtype} values"
    prefix = ""
    if "time" in variable.dims and variable.sizes["time"] > 0:
        last = variable["time"].values[-1] if "time" in variable.coords else variable.sizes["time"] - 1
        variable = variable.isel(time=-1)
        prefix = f"final (time {last.item() if hasattr(last, 'item') else last}): "
    boolean = variable.dtype.kind == "b"
    values = variable.astype(float) if boolean else variable
    if done is not None:
        values = values.where(done)
    over = " x ".join(f"{size} {dim}" for dim, size in values.sizes.items())
    if boolean:
        return f"{prefix}fraction true {_number(float(values.mean()))}" + (f" over {over}" if over else "")
    if not values.dims:
        return f"{prefix}{_number(float(values))}"
    low, high, mean = float(values.min()), float(values.max()), float(values.mean())
    if np.isnan(mean):
        return f"{prefix}no values yet"
    return f"{prefix}mean {_number(mean)}, range {_number(low)} to {_number(high)} over {over}"


def _parameters(dataset: xr.Dataset, swept: list[str]) -> list[str]:
    try:
        params = json.loads(dataset.attrs.get("params", "{}"))
    except (TypeError, json.JSONDecodeError):
        return []
    lines = []
    for key, value in params.items():
        if key in swept:
            values = dataset[key].values
            shown = ", ".join(repr(v.item()) for v in values[:8]) + (", ..." if values.size > 8 else "")
            lines.append(f"  {key}: swept over {shown} ({values.size} value{'s' * (values.size != 1)})")
        else:
            lines.append(f"  {key} = {json.dumps(value)}")
    return lines


def describe_store(path: str | Path, verified: tuple[list[tuple[int, str, str]], int] | None = None) -> str:
    """What a store holds, as text: what ran, completion, parameters, a summary of every result
    (long name, units, final value or mean and range), dimensions, provenance and the experiment.

    ``verified`` is what :func:`verify_store` found, to be reported too.
    """
    dataset = open_store(path)
    attrs = dataset.attrs
    sweep = "done" in dataset
    swept = [dim for dim in dataset["done"].dims if dim != "repeat"] if sweep else []
    protocol = attrs.get("protocol", "(unknown)")
    lines = [f"store: {path}"]
    if sweep:
        grid = ", ".join(f"{dim} ({dataset.sizes[dim]})" for dim in dataset["done"].dims)
        lines.append(f"a sweep of protocol {protocol!r} over {grid}: {dataset['done'].size} points")
        done = dataset["done"].values.astype(bool)
        failed = dataset["failed"].values.astype(bool)
        lines.append(f"completion: {int(done.sum())} of {done.size} points done, {int(failed.sum())} failed")
        if verified is not None:
            damaged, checked = verified
            lines.append(f"verified: {checked - len(damaged)} of {checked} done points read back as written"
                         + ("" if "point_checksum" in dataset else " (a store without checksums: chunks read only)"))
            if damaged:
                lines.append(f"damaged points ({len(damaged)}; plasticity sweep FILE -o {path} --resume "
                             "recomputes them):")
                lines.extend(f"  {label}: {reason}" for _, label, reason in damaged)
        wall = dataset["point_wall_time"].values
        lines.append(f"run time: {float(np.nansum(wall)):.3f} s of point compute time")
        if failed.any():
            lines.append("failed points:")
            for index in zip(*np.nonzero(failed)):
                labels = ", ".join(
                    f"{dim}={dataset[dim].values[i]}" for dim, i in zip(dataset["done"].dims, index)
                )
                lines.append(f"  {labels}: {dataset['point_error'].values[index]}")
    else:
        lines.append(f"a single run of protocol {protocol!r}")
        if "wall_time_s" in attrs:
            lines.append(f"run time: {float(attrs['wall_time_s']):.3f} s")
        if verified is not None:
            lines.append("verified: every variable reads back as written")
    settings = [f"{key} {attrs[key]}" for key in ("backend", "device", "dtype", "seed") if key in attrs]
    if settings:
        lines.append("settings: " + ", ".join(settings))
    parameters = _parameters(dataset, swept)
    if parameters:
        lines.append("parameters:")
        lines.extend(parameters)
    done_mask = dataset["done"] if sweep else None
    results = [name for name in dataset.data_vars if name not in _BOOKKEEPING]
    if results:
        lines.append("results" + (" (over the done points)" if sweep else "") + ":")
    for name in results:
        variable = dataset[name]
        title = variable.attrs.get("long_name", "")
        units = variable.attrs.get("units")
        heading = f"  {name}" + (f": {title}" if title else "") + (f" [{units}]" if units else "")
        lines.append(f"{heading} ({', '.join(variable.dims)}) {variable.dtype}")
        try:
            summary = _summary(variable, done_mask)
        except Exception as error:  # a damaged chunk: say so and go on; --verify names the points
            summary = f"does not read back ({type(error).__name__}: {error}); show --verify lists the damage"
        lines.append(f"      {summary}")
    lines.append("dimensions: " + ", ".join(f"{name}={size}" for name, size in dataset.sizes.items()))
    lines.append("coordinates:")
    for name, coord in dataset.coords.items():
        values = coord.values
        shown = ", ".join(map(str, values[:8])) + (", ..." if values.size > 8 else "")
        lines.append(f"  {name} ({', '.join(coord.dims)}): {shown}")
    lines.append("provenance:")
    for key, value in sorted(attrs.items()):
        if key not in _SHOWN_ELSEWHERE:
            lines.append(f"  {key}: {_format_attr(value)}")
    if "experiment_toml" in attrs:
        lines.append("experiment:")
        lines.extend("  " + line for line in str(attrs["experiment_toml"]).splitlines())
    return "\n".join(lines)


def netcdf_attrs(attrs: dict[str, Any]) -> dict[str, str | int | float]:
    """Attributes netCDF accepts: strings and numbers kept, anything else as a JSON string."""
    out: dict[str, str | int | float] = {}
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True, default=str)
    return out


def export_netcdf(store: str | Path, out: str | Path) -> Path:
    """Write the store ``store`` to the netCDF file ``out`` (atomically) and return its path."""
    dataset = open_store(store).load()
    dataset.attrs = netcdf_attrs(dataset.attrs)
    for variable in dataset.variables.values():
        variable.attrs = netcdf_attrs(variable.attrs)
        variable.encoding = {}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        dataset.to_netcdf(temporary, engine="h5netcdf")
        os.replace(temporary, out)
    finally:
        if temporary.exists():
            temporary.unlink()
    return out
