"""Parameter sweeps: a grid of protocol runs written into one resumable Zarr store.

The grid is the product of the experiment's ``[sweep]`` values and
``repeats``. Point ``i`` (row-major over the swept dimensions, then
``repeat``) runs with the seed ``numpy.random.SeedSequence(root_seed,
spawn_key=(i,))`` -- the ``i``-th child that ``SeedSequence(root_seed).spawn``
gives -- so results depend neither on the number of workers nor on the order
in which points finish. With ``seed_by`` (a subset of the dimensions), ``i``
is the point's index over those dimensions alone, so points that differ only
in the others share their seed: rules or modes compared on the same patterns,
data order and initial weights (common random numbers).

The store is created before any point is written, with every swept coordinate
and the per-point bookkeeping variables ``done``, ``failed``, ``point_error``,
``point_wall_time``, ``point_worker``, ``point_finished_at``,
``point_index`` and ``point_checksum`` (chunk size 1 on the swept
dimensions). The protocol's own variables are added when the first point
finishes, with the swept dimensions first. Only this process writes, holding
the store's lock (:mod:`plasticity.integrity`), each point into its own
chunks, encoded and written in this thread (:mod:`plasticity.zarr_chunks`); a
point's checksum is written with its data and its ``done`` flag after them, so
a store killed at any moment holds only complete points.
``resume=True`` refuses a store made with another configuration, checks every
done point against its checksum, and runs the points whose flag is not set
(failed and damaged ones included).

Points of a protocol declared with ``threads=True`` (its work is compiled code that
releases the GIL; :func:`plasticity.protocols.protocol`) run on threads of this
process: nothing to start, the imports and kernels already loaded, the store
created and written meanwhile. Points of other protocols run in this process and
on a ``dask.distributed`` ``LocalCluster`` of single-threaded worker processes
started in the background and stopped here (a worker's start-up, its imports and
kernel loads, costs seconds: this process does not wait for it). With a scheduler
address, the points run on that existing cluster. Results are written in batches,
whatever has finished each time this process comes to write.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import logging
import math
import os
import shutil
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xarray as xr

# zarr is imported where a store is opened or written: points on threads start while it loads.
from plasticity.errors import ConfigError, PlasticityError
from plasticity.experiment import Experiment
from plasticity.provenance import base_attrs, git_revision, now_iso, to_json
from plasticity.integrity import acquire_lock, check_metadata, check_unlocked, point_checksum
from plasticity.storage import ZARR_FORMAT, is_store, verify_store

__all__ = ["Grid", "SweepSummary", "point_seed", "default_workers", "run_sweep", "BOOKKEEPING"]

#: Per-point variables every sweep store holds, over the swept dimensions and ``repeat``.
BOOKKEEPING = (
    "done",
    "failed",
    "point_error",
    "point_wall_time",
    "point_worker",
    "point_finished_at",
    "point_index",
    "point_checksum",
)


@dataclass(frozen=True)
class Grid:
    """The points of a sweep: the product of the swept values and ``repeats``."""

    axes: dict[str, tuple[Any, ...]]
    repeats: int = 1
    seed_by: tuple[str, ...] | None = None

    @classmethod
    def from_experiment(cls, experiment: Experiment) -> "Grid":
        return cls(dict(experiment.axes), experiment.repeats, experiment.seed_by)

    @property
    def dims(self) -> tuple[str, ...]:
        return (*self.axes, "repeat")

    @property
    def shape(self) -> tuple[int, ...]:
        return (*(len(values) for values in self.axes.values()), self.repeats)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def coords(self) -> dict[str, np.ndarray]:
        coords = {name: np.asarray(values) for name, values in self.axes.items()}
        coords["repeat"] = np.arange(self.repeats)
        return coords

    def position(self, index: int) -> tuple[int, ...]:
        """The point's index along each of :attr:`dims`."""
        return tuple(int(i) for i in np.unravel_index(index, self.shape))

    def seed_index(self, index: int) -> int:
        """The spawn key of point ``index``'s seed: its index over the ``seed_by`` dimensions."""
        if self.seed_by is None:
            return index
        chosen = [i for i, dim in enumerate(self.dims) if dim in self.seed_by]
        position = self.position(index)
        return int(np.ravel_multi_index([position[i] for i in chosen], [self.shape[i] for i in chosen])) \
            if chosen else 0

    def params(self, index: int) -> dict[str, Any]:
        """The swept parameter values of point ``index``."""
        position = self.position(index)
        return {name: values[i] for (name, values), i in zip(self.axes.items(), position)}

    def label(self, index: int) -> str:
        parts = [f"{name}={value!r}" for name, value in self.params(index).items()]
        parts.append(f"repeat={self.position(index)[-1]}")
        return ", ".join(parts)


def point_seed(root_seed: int, index: int) -> np.random.SeedSequence:
    """The seed of point ``index``: the ``index``-th child spawned from ``root_seed``."""
    return np.random.SeedSequence(root_seed, spawn_key=(index,))


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class SweepSummary:
    """What a call of :func:`run_sweep` achieved."""

    path: Path
    n_points: int
    done: int
    ran: int
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    repaired: list[tuple[int, str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"{self.path}: {self.done} of {self.n_points} points done "
            f"({self.ran} run now in {self.elapsed_s:.1f} s), {len(self.failed)} failed"
        ]
        if self.repaired:
            lines.append(f"recomputed {len(self.repaired)} damaged point{'s' * (len(self.repaired) != 1)}:")
            lines.extend(f"  point {index} ({label}): {reason}" for index, label, reason in self.repaired)
        for index, label, error in self.failed:
            lines.append(f"  failed point {index} ({label}): {error}")
        if self.failed or self.done < self.n_points:
            lines.append("run the same command with --resume to retry the points not done")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- worker side


def _run_point(
    protocol: str,
    params: dict[str, Any],
    backend: str,
    dtype: str,
    device: str | None,
    root_seed: int,
    index: int,
    seed_index: int,
    import_root: str | None,
) -> dict[str, Any]:
    """Run point ``index`` seeded by ``seed_index``; never raises for a failure of the protocol (it
    is reported instead)."""
    if import_root is not None and import_root not in sys.path:
        sys.path.insert(0, import_root)
    from plasticity.protocols import run_protocol

    worker = f"{socket.gethostname()}:{os.getpid()}"
    if threading.current_thread() is not threading.main_thread():
        worker += f"/{threading.current_thread().name}"
    start = time.perf_counter()
    try:
        dataset = run_protocol(
            protocol, params, backend=backend, seed=point_seed(root_seed, seed_index), dtype=dtype, device=device
        ).load()
    except Exception as error:  # a failed point is recorded; the sweep goes on
        return {"index": index, "ok": False, "error": f"{type(error).__name__}: {error}",
                "wall_time": time.perf_counter() - start, "worker": worker}
    dataset.attrs = {}
    return {"index": index, "ok": True, "dataset": dataset,
            "wall_time": time.perf_counter() - start, "worker": worker}


def _import_root(protocol: str) -> str | None:
    """The folder a ``module:function`` protocol is imported from, for worker processes."""
    if ":" not in protocol:
        return None
    top = protocol.partition(":")[0].split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin).resolve()
    return str(origin.parent.parent if origin.name == "__init__.py" else origin.parent)


# ----------------------------------------------------------------------------- the store


def _bookkeeping_template(grid: Grid, experiment: Experiment) -> xr.Dataset:
    shape, dims = grid.shape, grid.dims
    data = {
        "done": (dims, np.zeros(shape, bool), {"description": "the point's data is written"}),
        "failed": (dims, np.zeros(shape, bool), {"description": "the point's last run raised an error"}),
        "point_error": (dims, np.full(shape, "", dtype=object), {"description": "error of a failed point"}),
        "point_wall_time": (dims, np.full(shape, np.nan), {"units": "s", "description": "run time of the point"}),
        "point_worker": (dims, np.full(shape, "", dtype=object), {"description": "host:pid that ran the point"}),
        "point_finished_at": (dims, np.full(shape, np.nan),
                              {"units": "s", "description": "when the point was written: Unix time, s from 1970-01-01 UTC"}),
        "point_index": (dims, np.arange(grid.size, dtype=np.int64).reshape(shape), {
            "description": "the point's seed is numpy.random.SeedSequence(seed, spawn_key=(point_index,)), "
                           "or with seed_by its index over the seed_by dimensions"}),
        "point_checksum": (dims, np.zeros(shape, np.uint64), {
            "description": "64-bit BLAKE2b hash of the point's data as written (plasticity.integrity.point_checksum)"}),
    }
    dataset = xr.Dataset(
        {name: xr.Variable(d, v, attrs=a) for name, (d, v, a) in data.items()}, coords=grid.coords()
    )
    attrs = base_attrs(backend=experiment.backend, dtype=experiment.dtype, seed=experiment.seed)
    attrs.update(
        store_kind="sweep",
        protocol=experiment.protocol,
        params=to_json(experiment.resolved_params()),
        sweep_dims=to_json(list(grid.dims)),
        n_points=grid.size,
        config=to_json(experiment.config()),
        experiment_toml=experiment.to_toml(),
        git_revision=git_revision(),
        start_time=now_iso(),
    )
    if experiment.device is not None:
        attrs["device"] = experiment.device
    if experiment.seed_by is not None:
        attrs["seed_by"] = to_json(list(experiment.seed_by))
    dataset.attrs = attrs
    return dataset


def _zarr_files(dataset: xr.Dataset, encoding: dict[str, dict]) -> dict[str, bytes]:
    """The files of ``dataset`` as a Zarr store: metadata, and the data of its numpy-backed variables
    (dask placeholders stay unwritten). Built in memory: zarr's file store takes a thread hop per file."""
    import zarr

    files: dict[str, Any] = {}
    dataset.to_zarr(zarr.storage.MemoryStore(files), mode="w-", compute=False, consolidated=True,
                    zarr_format=ZARR_FORMAT, encoding=encoding)
    return {key: value.to_bytes() for key, value in files.items()}


def _place(target: Path, files: dict[str, bytes]) -> None:
    """Create the folder ``target`` holding ``files`` (keyed by their paths inside it), whole or not
    at all: written in a hidden folder beside it (which readers and the integrity checks pass over)
    and renamed into place."""
    temporary = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        for key, data in files.items():
            file = temporary / key
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _create_store(path: Path, grid: Grid, experiment: Experiment) -> None:
    template = _bookkeeping_template(grid, experiment)
    chunks = (1,) * len(grid.dims)
    encoding = {name: {"chunks": chunks} for name in BOOKKEEPING}
    for name in ("done", "failed", "point_index", "point_checksum"):
        encoding[name]["_FillValue"] = None
    path.parent.mkdir(parents=True, exist_ok=True)
    _place(path, _zarr_files(template, encoding))


def _config_differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    differences = []
    for key in sorted(set(stored) | set(current)):
        name = f"{prefix}{key}"
        old, new = stored.get(key, "(absent)"), current.get(key, "(absent)")
        if isinstance(old, dict) and isinstance(new, dict):
            differences.extend(_config_differences(old, new, name + "."))
        elif old != new:
            differences.append(f"{name}: {json.dumps(old)} in the store, {json.dumps(new)} now")
    return differences


def _check_resumable(path: Path, experiment: Experiment) -> None:
    import zarr

    attrs = dict(zarr.open_group(path, mode="r", use_consolidated=False).attrs)
    if attrs.get("store_kind") != "sweep":
        raise ConfigError(f"{str(path)!r} is not a sweep store; cannot resume it")
    current = json.loads(to_json(experiment.config()))
    differences = _config_differences(json.loads(attrs["config"]), current)
    if differences:
        raise ConfigError(
            f"refusing to resume {str(path)!r}: it was made with a different configuration; "
            + "; ".join(differences)
            + ". Use another output path for the new configuration."
        )


def _signature(dataset: xr.Dataset) -> dict[str, Any]:
    variables = {
        name: (variable.dims, variable.shape, variable.dtype.str) for name, variable in dataset.data_vars.items()
    }
    coords = {name: (coord.dims, coord.values.tolist()) for name, coord in dataset.coords.items()}
    return {"variables": variables, "coords": coords}


class _Store:
    """The parent process's handle on a sweep store: the only writer."""

    def __init__(self, path: Path, grid: Grid):
        self.path, self.grid = path, grid
        self._open()
        self.signature: dict[str, Any] | None = None
        if "data_signature" in self.group.attrs:
            self.signature = json.loads(self.group.attrs["data_signature"])

    def _open(self) -> None:
        import zarr

        self.group = zarr.open_group(self.path, mode="r+", zarr_format=ZARR_FORMAT, use_consolidated=False)
        self.arrays = dict(self.group.arrays())
        self._chunks: dict[str, Any] = {}  # variable -> its PointChunks

    def _set(self, position: tuple[int, ...], values: dict[str, Any]) -> None:
        """Write ``values`` (variable name -> value) at ``position``."""
        self._set_many([(position, values)])

    def _set_many(self, writes: list[tuple[tuple[int, ...], dict[str, Any]]]) -> None:
        """Write each ``(position, values)``, in order, one chunk of each variable per point."""
        from plasticity.zarr_chunks import PointChunks

        for position, values in writes:
            for name, value in values.items():
                if name not in self._chunks:
                    self._chunks[name] = PointChunks(self.path / name, self.arrays[name], len(self.grid.dims))
                self._chunks[name].write(position, value)

    def mark_damaged(self, damaged: list[tuple[int, str, str]]) -> None:
        """Clear the done flag of damaged points, so that they run again, and say why."""
        for index, _, reason in damaged:
            self._set(self.grid.position(index), {"done": False, "point_error": f"damaged: {reason}"})

    def pending(self) -> list[int]:
        done = np.asarray(self.group["done"][...], dtype=bool).reshape(-1)
        return [int(i) for i in np.flatnonzero(~done)]

    def _add_variables(self, dataset: xr.Dataset, index: int) -> None:
        """Add the variables of the protocol's output, and its coordinates, to the store: their
        files made in memory as xarray writes them, each array placed whole; then the
        output's signature and the consolidated metadata."""
        clash = sorted((set(dataset.variables) | set(dataset.dims)) & (set(self.grid.dims) | set(BOOKKEEPING)))
        if clash:
            raise PlasticityError(
                f"protocol output at point {index} uses the name(s) {', '.join(map(repr, clash))}, "
                f"which the sweep store uses for its own dimensions or bookkeeping ({', '.join(self.grid.dims)}, "
                f"{', '.join(BOOKKEEPING)}); rename them in the protocol or do not sweep them"
            )
        import dask.array as da

        lead_chunks = (1,) * len(self.grid.dims)
        variables, encoding = {}, {}
        for name, variable in dataset.data_vars.items():
            if variable.dtype.kind not in "biufc":
                raise PlasticityError(
                    f"protocol output variable {name!r} has dtype {variable.dtype}; sweep stores hold numbers and "
                    "booleans"
                )
            floating = variable.dtype.kind in "fc"
            fill = np.nan if floating else 0
            data = da.full(self.grid.shape + variable.shape, fill, dtype=variable.dtype,
                           chunks=lead_chunks + variable.shape)
            variables[name] = xr.Variable(self.grid.dims + variable.dims, data, attrs=variable.attrs)
            encoding[name] = {"chunks": lead_chunks + variable.shape}
            if not floating:
                encoding[name]["_FillValue"] = None
        coords = {name: coord.variable for name, coord in dataset.coords.items()}
        new = (set(variables) | set(coords)) - set(self.arrays)  # present ones were added whole before a kill
        files = _zarr_files(xr.Dataset(variables, coords={**self.grid.coords(), **coords}), encoding)
        arrays: dict[str, dict[str, bytes]] = {}
        for key, data in files.items():
            name, _, inside = key.partition("/")
            if name in new:
                arrays.setdefault(name, {})[inside] = data
        for name, array_files in arrays.items():
            _place(self.path / name, array_files)
        self._open()
        self.signature = json.loads(json.dumps(_signature(dataset)))
        self.group.attrs["data_signature"] = json.dumps(self.signature)
        import zarr

        zarr.consolidate_metadata(self.path, zarr_format=ZARR_FORMAT)

    def _check(self, dataset: xr.Dataset, index: int) -> None:
        signature = json.loads(json.dumps(_signature(dataset)))
        if signature == self.signature:
            return
        expected, got = self.signature["variables"], signature["variables"]
        problems = []
        for name in sorted(set(expected) | set(got)):
            if name not in got:
                problems.append(f"variable {name!r} is missing")
            elif name not in expected:
                problems.append(f"variable {name!r} is new")
            elif expected[name] != got[name]:
                problems.append(
                    f"variable {name!r} has dims {tuple(got[name][0])}, shape {tuple(got[name][1])}, dtype "
                    f"{got[name][2]} but the first point gave dims {tuple(expected[name][0])}, shape "
                    f"{tuple(expected[name][1])}, dtype {expected[name][2]}"
                )
        if not problems:
            problems.append("its coordinates differ from the first point's")
        raise PlasticityError(
            f"the protocol's output changed shape at point {index} ({self.grid.label(index)}): "
            + "; ".join(problems)
            + ". A swept protocol must return the same variables and shapes at every point; "
            "the store keeps the points written so far"
        )

    def _prepare(self, result: dict[str, Any]) -> tuple[tuple[int, ...], dict[str, Any]]:
        index = result["index"]
        position = self.grid.position(index)
        if result["ok"]:
            dataset = result["dataset"]
            if self.signature is None:
                self._add_variables(dataset, index)
            else:
                self._check(dataset, index)
        values = {name: variable.values for name, variable in dataset.data_vars.items()} if result["ok"] else {}
        if result["ok"] and "point_checksum" in self.arrays:
            values["point_checksum"] = np.uint64(point_checksum(values))
        values.update(
            point_wall_time=result["wall_time"],
            point_worker=result["worker"],
            point_finished_at=time.time(),
            point_error="" if result["ok"] else result["error"],
            failed=not result["ok"],
        )
        return position, values

    def write(self, results: list[dict[str, Any]]) -> None:
        """Write the points of ``results``: every point's data (and checksum) at once, then their done
        flags, so that a point is done only once all its data is written. A result that does not fit
        the store raises after the results before it are written."""
        prepared, error = [], None
        for result in results:
            try:
                prepared.append((self._prepare(result), result["ok"]))
            except PlasticityError as raised:
                error = raised
                break
        self._set_many([write for write, _ in prepared])
        self._set_many([(position, {"done": True}) for (position, _), ok in prepared if ok])
        if error is not None:
            raise error

    def finish(self, started: float) -> tuple[int, list[int]]:
        done = np.asarray(self.group["done"][...], dtype=bool).reshape(-1)
        failed = np.asarray(self.group["failed"][...], dtype=bool).reshape(-1)
        self.group.attrs.update(
            {
                "end_time": now_iso(),
                "points_done": int(done.sum()),
                "points_failed": int(failed.sum()),
                "last_session_s": round(time.perf_counter() - started, 3),
            }
        )
        import zarr

        zarr.consolidate_metadata(self.path, zarr_format=ZARR_FORMAT)
        return int(done.sum()), [int(i) for i in np.flatnonzero(failed)]


# ----------------------------------------------------------------------------- running


#: dask's default for its workers' ``MALLOC_TRIM_THRESHOLD_`` (``distributed.nanny.pre-spawn-environ``).
_DASK_MALLOC_TRIM_THRESHOLD = 65536


def local_worker_environ() -> dict[str, Any]:
    """The variables dask sets before a local worker process starts, less dask's default
    ``MALLOC_TRIM_THRESHOLD_`` (a value set in the user's dask configuration stays). That setting
    hands every freed block over 64 KiB back to the system, and turns off glibc's adaptive
    threshold that otherwise keeps a protocol's temporary arrays in the heap: each one then
    comes back as fresh pages. A numpy protocol (``busy`` in ``benchmarks/bench_sweep.py``: 0.43 s a
    point in a plain process) took 0.58-0.70 s in a worker with it, the same as a plain process
    given the variable. A sweep's workers live as long as the sweep; what they keep goes with them."""
    import dask
    import distributed  # noqa: F401  (loads dask's distributed configuration)

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    if str(environ.get("MALLOC_TRIM_THRESHOLD_")) == str(_DASK_MALLOC_TRIM_THRESHOLD):
        del environ["MALLOC_TRIM_THRESHOLD_"]
    return environ


class _Background:
    """A local cluster of ``n`` worker processes started in a background thread, so that spawning
    them and their imports overlap with the points this process runs meanwhile."""

    def __init__(self, n: int, env: dict[str, str]):
        self.workers = range(n)
        self.client: Any = None
        self.cluster: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, args=(n, env), name="plasticity-cluster", daemon=True)
        self._thread.start()

    def _start(self, n: int, env: dict[str, str]) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster

            with dask.config.set({"distributed.nanny.pre-spawn-environ": local_worker_environ()}):
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=logging.ERROR, env=env)
            self.client = Client(self.cluster)
        except Exception as error:  # reported by the caller, which goes on with its own process
            self.error = error

    @property
    def ready(self) -> bool:
        return self.client is not None

    def close(self) -> None:
        self._thread.join()
        if self.error is not None:
            print(f"plasticity: the local workers did not start ({type(self.error).__name__}: {self.error}); "
                  "this process ran the points", file=sys.stderr)
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


@contextlib.contextmanager
def _fewer_threads(threads: int) -> Iterator[None]:
    """This process's numba (and so MKL) threads set to ``threads`` for the duration."""
    numba = sys.modules.get("numba")
    if numba is None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, before))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _lost(index: int, error: BaseException) -> dict[str, Any]:
    return {"index": index, "ok": False, "error": f"{type(error).__name__}: {error}", "wall_time": float("nan"),
            "worker": ""}


def _local_processes(workers: int | None, scheduler: str | None) -> int:
    """How many processes run points on this machine (this one included); 0 with a scheduler."""
    if scheduler is not None:
        return 0
    return 1 if workers == 0 else workers or default_workers()


#: What starting a local worker costs, in seconds: spawning a process that imports the package
#: and the protocol's model and loads its kernels (measured in ``benchmarks/README.md``). Local
#: workers start only when this process would need more than twice this for the points left, so
#: a short sweep is not slowed down by workers it cannot use.
WORKER_START_S = 5.0


def _start_workers(processes: int) -> _Background | None:
    """The ``processes - 1`` worker processes of a local cluster, starting in the background."""
    if processes <= 1:
        return None
    # The workers share this machine's cores with this process: numba (and BLAS) in each gets its share.
    return _Background(processes - 1, _worker_env(max(1, default_workers() // processes)))


def _run_points(tasks: list[tuple], write: Any, scheduler: str | None, processes: int,
                pool: _Background | None = None) -> None:
    """Run ``tasks`` and ``write`` (a function of a list of results) what they return, as they finish.

    Without a scheduler this process runs points itself and, once two have shown what a point
    costs, starts ``processes - 1`` local workers in the background if the points
    left are worth it (:data:`WORKER_START_S`); they take points from the first as soon as they
    are up (``pool``: workers already started). Kernels are then compiled once, by this process,
    and loaded by the workers. With a scheduler, the cluster's workers run every point.
    """
    pending = collections.deque(tasks)
    computes = scheduler is None
    client = None
    if scheduler is not None:
        from distributed import Client

        client = Client(scheduler)
    own_times: list[float] = []
    in_flight: dict[Any, int] = {}
    try:
        with _fewer_threads(max(1, default_workers() // processes)) if computes and processes > 1 \
                else contextlib.nullcontext():
            while pending or in_flight:
                if client is None and pool is not None and pool.ready:
                    client = pool.client
                if client is not None and (own_times or not computes):
                    # Two points per worker in flight: this process takes the others from the far end.
                    limit = 2 * max(1, len(client.scheduler_info().get("workers", {})))
                    while pending and len(in_flight) < limit:
                        task = pending.popleft()
                        in_flight[client.submit(_run_point, *task, pure=False)] = task[6]
                results = []
                for future in [future for future in in_flight if future.done()]:
                    index = in_flight.pop(future)
                    try:
                        results.append(future.result())
                    except Exception as error:  # the worker died or the task was lost
                        results.append(_lost(index, error))
                if computes and pending:
                    start = time.perf_counter()
                    # In order while alone; from the far end once workers may take from the front.
                    results.append(_run_point(*(pending.popleft() if pool is None else pending.pop())))
                    own_times.append(time.perf_counter() - start)
                    if len(own_times) == 2 and pool is None and processes > 1 and \
                            len(pending) * own_times[1] > 2 * WORKER_START_S:  # the first point compiled
                        pool = _start_workers(min(processes, len(pending) + 1))
                elif not results and in_flight:
                    from distributed import wait

                    try:
                        wait(list(in_flight), timeout=0.5, return_when="FIRST_COMPLETED")
                    except TimeoutError:
                        pass
                if results:
                    write(results)
    finally:
        if scheduler is not None:
            client.close()
        elif pool is not None:
            pool.close()


def threads_run_points_at_once() -> bool:
    """Whether points of a ``threads=True`` protocol may run on threads of this process: numba's
    threading layer must take parallel kernels launched from several threads at once (OpenMP and
    TBB do; numba's own ``workqueue`` aborts the process)."""
    import numba
    from numba.np.ufunc.parallel import _launch_threads

    try:
        _launch_threads()  # chooses the layer, compiles nothing
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:
        return False


class _PointThreads:
    """The points of ``tasks`` running, in order, on ``count`` threads of this process, from the
    moment this is made; :meth:`write_as_they_finish` writes what they return from the calling
    thread, whatever has finished each time it comes to write.

    For protocols declared with ``threads=True`` (:func:`plasticity.protocols.protocol`), whose
    work releases the GIL: no process to start, no import or kernel load repeated, and the
    store's writes overlap the points. Each thread runs its points' numba kernels (and BLAS)
    on its share of the cores (numba's thread count is per thread).
    """

    def __init__(self, tasks: list[tuple], count: int):
        from concurrent.futures import ThreadPoolExecutor

        share = max(1, default_workers() // count)

        def run(task: tuple) -> dict[str, Any]:
            with _fewer_threads(share):
                return _run_point(*task)

        self._executor = ThreadPoolExecutor(count, thread_name_prefix="point")
        self._in_flight = {self._executor.submit(run, task) for task in tasks}

    def write_as_they_finish(self, write: Any) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait

        while self._in_flight:
            finished, self._in_flight = wait(self._in_flight, return_when=FIRST_COMPLETED)
            write(sorted((future.result() for future in finished), key=lambda result: result["index"]))

    def close(self) -> None:
        """Drop the points not started (after an error or Ctrl-C); wait for those running."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _worker_env(threads: int) -> dict[str, str]:
    value = str(threads)
    return {name: value for name in
            ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def run_sweep(
    experiment: Experiment,
    path: str | Path,
    *,
    resume: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    name: str | None = None,
) -> SweepSummary:
    """Run every point of ``experiment``'s grid into the Zarr store ``path``.

    ``workers`` is the number of points run at once on this machine (default:
    the number of cores; ``0`` or ``1``: one at a time in this process, without
    dask). A protocol declared with ``threads=True`` runs them on ``workers``
    threads of this process, each with its share of the cores. For other
    protocols this process runs points itself and, when the points left are
    worth a worker's start-up (:data:`WORKER_START_S`), starts ``workers - 1``
    single-threaded worker processes of a local dask cluster in the background,
    which take points once they are up.
    ``scheduler`` is the address of an existing dask scheduler whose workers
    run every point instead. ``resume`` continues the store ``path``: it
    checks every done point against its checksum first and recomputes the
    damaged ones. The store is locked while this runs; a second writer gets a
    :class:`~plasticity.integrity.StoreLockedError`. ``name`` is what the
    progress bar and summary call the store (default: ``path``).
    Local workers are spawned processes: a script that calls this function
    must do so under ``if __name__ == "__main__":``.
    """
    from tqdm import tqdm

    from plasticity.backends import check_backend
    from plasticity.protocols import get_protocol

    path = Path(path)
    shown = Path(name) if name is not None else path
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ConfigError(f"workers must be a non-negative integer (0 runs in this process), got {workers!r}")
    if workers is not None and scheduler is not None:
        raise ConfigError("give either workers (a local cluster) or scheduler (an existing cluster), not both")
    check_backend(experiment.backend, experiment.device)
    grid = Grid.from_experiment(experiment)
    processes = _local_processes(workers, scheduler)
    on_threads = processes > 1 and get_protocol(experiment.protocol).threads and threads_run_points_at_once()
    repaired: list[tuple[int, str, str]] = []
    if path.exists() and not resume:
        check_unlocked(path)
        raise ConfigError(
            f"{str(path)!r} already exists; pass --resume to continue that sweep, or choose another output path"
        )
    lock = acquire_lock(path)
    try:
        if path.exists() and not resume:  # created by another sweep since the check above
            raise ConfigError(f"{str(path)!r} was created by another sweep meanwhile; pass --resume to continue it")
        if path.exists() and not is_store(path):
            raise ConfigError(f"{str(path)!r} exists and is not a Zarr store; cannot resume it")
        resuming = path.exists()
        started = time.perf_counter()
        note = lock.takeover_note()
        if note is not None:
            print(f"plasticity: {note}", file=sys.stderr)
        if resuming:
            check_metadata(path)
            _check_resumable(path, experiment)
            damaged, _ = verify_store(path)
            repaired = [(index, label, reason) for index, label, reason in damaged]
            store = _Store(path, grid)
            store.mark_damaged(repaired)
            pending = store.pending()
        else:
            pending = list(range(grid.size))
        base = dict(experiment.params)
        root = _import_root(experiment.protocol)
        tasks = [
            (experiment.protocol, {**base, **grid.params(index)}, experiment.backend, experiment.dtype,
             experiment.device, experiment.seed, index, grid.seed_index(index), root)
            for index in pending
        ]
        # Points on threads start at once; a new store is created while the first of them run.
        threads = _PointThreads(tasks, processes) if on_threads and tasks else None
        try:
            if not resuming:
                _create_store(path, grid, experiment)
                store = _Store(path, grid)
            ran = 0
            bar = tqdm(total=grid.size, initial=grid.size - len(pending), unit="point", desc=str(shown),
                       disable=not progress, file=sys.stderr, smoothing=0.1)

            def write(results: list[dict[str, Any]]) -> None:
                nonlocal ran
                store.write(results)
                ran += len(results)
                bar.update(len(results))

            try:
                if threads is not None:
                    threads.write_as_they_finish(write)
                elif tasks:
                    _run_points(tasks, write, scheduler, processes)
            finally:
                bar.close()
                done, failed = store.finish(started)
        finally:
            if threads is not None:
                threads.close()
        labels = [(index, grid.label(index), str(store.group["point_error"][grid.position(index)]))
                  for index in failed]
    finally:
        lock.release()
    return SweepSummary(shown, grid.size, done, ran, labels, time.perf_counter() - started, repaired)
