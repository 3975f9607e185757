"""Sweeps: grid and seeds, the store layout, failed points, resume, refusals, workers, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from plasticity.errors import ConfigError, PlasticityError
from plasticity.experiment import parse_experiment
from plasticity.integrity import StoreLockedError, lock_holder, lock_path
from plasticity.protocols import run_protocol
from plasticity.sweep import BOOKKEEPING, Grid, point_seed, run_sweep

TESTS = Path(__file__).resolve().parent
NOISY = """
protocol = "sweep_protocols:noisy_mean"
backend = "numpy"
seed = 11
[params]
n = 5
{extra}
[sweep]
mu = {{start = 0.0, stop = 0.4, step = 0.1}}
scale = [1.0, 2.0]
repeats = 2
"""
#: Per-point bookkeeping that legitimately differs between two runs of the same sweep.
TIMING = ["point_wall_time", "point_worker", "point_finished_at"]


def _results(path: Path) -> xr.Dataset:
    return xr.open_zarr(path).drop_vars(TIMING).load()


def test_grid_order_and_seeds():
    grid = Grid({"rule": ("hebbian", "storkey"), "load": (0.1, 0.2, 0.3)}, repeats=2)
    assert grid.dims == ("rule", "load", "repeat") and grid.shape == (2, 3, 2) and grid.size == 12
    assert grid.params(7) == {"rule": "storkey", "load": 0.1} and grid.position(7) == (1, 0, 1)
    assert grid.label(7) == "rule='storkey', load=0.1, repeat=1"
    children = np.random.SeedSequence(5).spawn(12)
    for index in (0, 7, 11):
        assert np.array_equal(point_seed(5, index).generate_state(4), children[index].generate_state(4))


def test_store_layout_values_and_provenance(tmp_path):
    experiment = parse_experiment(NOISY.format(extra=""))
    summary = run_sweep(experiment, tmp_path / "s.zarr", workers=0, progress=False)
    assert (summary.n_points, summary.done, summary.ran, summary.failed) == (20, 20, 20, [])
    store = xr.open_zarr(tmp_path / "s.zarr")
    assert store["samples"].dims == ("mu", "scale", "repeat", "sample")
    assert store["samples"].encoding["chunks"] == (1, 1, 1, 5)
    assert set(BOOKKEEPING) <= set(store.data_vars) and bool(store["done"].all())
    # Each point equals a direct run of the protocol with the point's spawned seed.
    point = store.sel(mu=0.3, scale=2.0, repeat=1)
    index = int(point["point_index"])
    direct = run_protocol(experiment.protocol, {"n": 5, "mu": 0.3, "scale": 2.0}, backend="numpy",
                          seed=point_seed(11, index))
    np.testing.assert_array_equal(point["samples"].values, direct["samples"].values)
    attrs = store.attrs
    assert attrs["protocol"] == experiment.protocol and attrs["seed"] == "11" and attrs["backend"] == "numpy"
    assert "[sweep]" in attrs["experiment_toml"] and attrs["end_time"] >= attrs["start_time"]
    assert attrs["points_done"] == 20 and "plasticity_version" in attrs and "git_revision" in attrs
    assert (store["point_wall_time"] >= 0).all() and (store["point_worker"] != "").all()


def test_failed_points_are_recorded_and_resume_retries_them(tmp_path):
    gate = tmp_path / "gate"
    text = f"""
protocol = "sweep_protocols:gated"
backend = "numpy"
[params]
gate = "{gate}"
[sweep]
x = {{start = 0, stop = 5, step = 1}}
"""
    experiment = parse_experiment(text)
    path = tmp_path / "g.zarr"
    summary = run_sweep(experiment, path, workers=0, progress=False)
    assert summary.done == 3 and [index for index, _, _ in summary.failed] == [1, 3, 5]
    assert "x=3, repeat=0" in str(summary) and "RuntimeError: odd x=3 needs the gate file" in str(summary)
    store = xr.open_zarr(path).load()
    assert store["failed"].values.ravel().tolist() == [False, True, False, True, False, True]
    assert np.isnan(store["y"].sel(x=3).item())
    gate.touch()
    summary = run_sweep(experiment, path, resume=True, workers=0, progress=False)
    assert (summary.ran, summary.done, summary.failed) == (3, 6, [])
    store = xr.open_zarr(path).load()
    assert not store["failed"].any() and (store["point_error"] == "").all()
    assert store["y"].sel(x=3).item() == pytest.approx(9, abs=1)


@pytest.mark.parametrize("xs, done", [("[1, 2, 3, 4]", [False, True, False, True]), ("[1, 3]", [False, False])])
def test_a_store_whose_first_points_fail_gets_the_output_variables_from_the_first_that_runs(tmp_path, xs, done):
    """The output's variables are added by the first point that runs, after failed ones; a sweep in
    which every point failed leaves a store of bookkeeping alone."""
    experiment = parse_experiment(f"""
protocol = "sweep_protocols:gated"
backend = "numpy"
[params]
gate = "{tmp_path / 'gate'}"
[sweep]
x = {xs}
""")
    path = tmp_path / "g.zarr"
    summary = run_sweep(experiment, path, workers=0, progress=False)
    assert summary.done == sum(done)
    store = xr.open_zarr(path).load()
    assert store["done"].values.ravel().tolist() == done
    if any(done):
        assert store["y"].sel(x=2).item() == pytest.approx(4, abs=1) and np.isnan(store["y"].sel(x=3).item())
    else:
        assert "y" not in store and "data_signature" not in store.attrs


@pytest.mark.parametrize("arrays", [0, 1, 2])
def test_a_sweep_killed_while_adding_the_output_variables_adds_them_whole_on_resume(tmp_path, monkeypatch,
                                                                                   reference_store, arrays):
    """The output's arrays (``samples``, ``sample_mean`` and the coordinate ``sample``) are added one
    by one, each whole; a run stopped after ``arrays`` of them leaves a store that opens, and the
    resumed sweep equals the uninterrupted one."""
    import plasticity.sweep as sweep_module

    place, placed = sweep_module._place, []

    def stopping(target, files):  # the store itself is placed first, then each array inside it
        if target.parent == path:
            if len(placed) == arrays:
                raise KeyboardInterrupt
            placed.append(target.name)
        place(target, files)

    experiment = parse_experiment(NOISY.format(extra=""))
    path = tmp_path / "s.zarr"
    monkeypatch.setattr(sweep_module, "_place", stopping)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(experiment, path, workers=0, progress=False)
    monkeypatch.setattr(sweep_module, "_place", place)
    assert len(placed) == arrays and not xr.open_zarr(path)["done"].any()
    run_sweep(experiment, path, resume=True, workers=0, progress=False)
    xr.testing.assert_identical(_results(path), _results(reference_store).assign_attrs(_results(path).attrs))


def test_existing_store_needs_resume_and_resume_refuses_a_changed_configuration(tmp_path):
    path = tmp_path / "s.zarr"
    run_sweep(parse_experiment(NOISY.format(extra="")), path, workers=0, progress=False)
    with pytest.raises(ConfigError, match="already exists; pass --resume"):
        run_sweep(parse_experiment(NOISY.format(extra="")), path, workers=0, progress=False)
    changed = parse_experiment(NOISY.format(extra="delay = 0.001"), ["seed=12"])
    with pytest.raises(ConfigError) as error:
        run_sweep(changed, path, resume=True, workers=0, progress=False)
    message = str(error.value)
    assert "refusing to resume" in message and "params.delay: 0.0 in the store, 0.001 now" in message
    assert "seed: 11 in the store, 12 now" in message
    # Nothing to do on an unchanged resume.
    summary = run_sweep(parse_experiment(NOISY.format(extra="")), path, resume=True, workers=0, progress=False)
    assert (summary.ran, summary.done) == (0, 20)


def test_output_shape_depending_on_a_swept_parameter_is_an_error(tmp_path):
    experiment = parse_experiment(
        'protocol = "sweep_protocols:ragged"\nbackend = "numpy"\n[sweep]\nn = [3, 4, 5]\n'
    )
    path = tmp_path / "r.zarr"
    with pytest.raises(PlasticityError, match=r"output changed shape at point 1 \(n=4, repeat=0\).*"
                                              r"shape \(4,\).*the first point gave.*shape \(3,\)"):
        run_sweep(experiment, path, workers=0, progress=False)
    store = xr.open_zarr(path)  # still a valid store, holding the first point
    assert store["done"].values.ravel().tolist() == [True, False, False]


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory):
    """The sweep run uninterrupted in this process."""
    path = tmp_path_factory.mktemp("reference") / "s.zarr"
    run_sweep(parse_experiment(NOISY.format(extra="")), path, workers=0, progress=False)
    return path


@pytest.mark.slow
def test_local_workers_give_the_same_store(tmp_path, reference_store):
    path = tmp_path / "s.zarr"
    summary = run_sweep(parse_experiment(NOISY.format(extra="")), path, workers=2, progress=False)
    assert summary.done == 20
    xr.testing.assert_identical(_results(path), _results(reference_store).assign_attrs(_results(path).attrs))
    assert len(set(xr.open_zarr(path)["point_worker"].values.ravel())) <= 2


class _StartedPool:
    """A local cluster already up, standing in for one that finished starting in the background."""

    def __init__(self, cluster):
        from distributed import Client

        self.client, self.workers, self.ready = Client(cluster), range(1), True

    def close(self):
        self.client.close()


@pytest.mark.slow
def test_this_process_runs_the_first_point_then_shares_the_rest_with_the_workers(tmp_path):
    import logging

    from distributed import LocalCluster

    from plasticity.sweep import _run_point, _run_points

    experiment = parse_experiment(NOISY.format(extra="delay = 0.1").replace("repeats = 2", "repeats = 1"))
    grid = Grid.from_experiment(experiment)
    tasks = [(experiment.protocol, {**experiment.params, **grid.params(i)}, "numpy", "float32", None, 11, i, i,
              str(TESTS)) for i in range(grid.size)]
    written = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        _run_points(tasks, written.append, None, 2, _StartedPool(cluster))
    results = [result for batch in written for result in batch]
    assert sorted(result["index"] for result in results) == list(range(grid.size))
    # With workers about, this process runs points from the last, the first before any worker gets one.
    assert written[0][0]["index"] == grid.size - 1 and written[0][0]["worker"].endswith(f":{os.getpid()}")
    assert len({result["worker"] for result in results}) == 2  # this process and the worker
    for result in results:
        protocol, params, *rest = tasks[result["index"]]
        direct = _run_point(protocol, {**params, "delay": 0.0}, *rest)
        np.testing.assert_array_equal(result["dataset"]["samples"].values, direct["dataset"]["samples"].values)


def _worker_environment(name: str) -> str | None:
    return os.environ.get(name)


@pytest.mark.slow
def test_local_workers_start_without_dasks_malloc_trim_threshold(monkeypatch):
    """dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which made a numpy protocol's points
    1.5x slower there than in this process; the sweep's workers start without it (a value the
    user configured for dask stays)."""
    import dask
    import distributed  # noqa: F401  (its configuration)

    from plasticity.sweep import _Background, local_worker_environ, _worker_env

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # left by any earlier dask cluster here
    assert dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"] == 65536
    pool = _Background(1, _worker_env(1))
    try:
        while not pool.ready:
            assert pool.error is None, pool.error
            time.sleep(0.05)
        environment = pool.client.submit(_worker_environment, "MALLOC_TRIM_THRESHOLD_", pure=False).result()
        threads = pool.client.submit(_worker_environment, "NUMBA_NUM_THREADS", pure=False).result()
    finally:
        pool.close()
    assert environment is None and threads == "1"
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 1 << 20}):
        assert local_worker_environ()["MALLOC_TRIM_THRESHOLD_"] == 1 << 20


@pytest.mark.slow
def test_existing_cluster_by_scheduler_address(tmp_path, reference_store):
    import logging

    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        path = tmp_path / "s.zarr"
        summary = run_sweep(parse_experiment(NOISY.format(extra="")), path, scheduler=cluster.scheduler_address,
                            progress=False)
    assert summary.done == 20
    xr.testing.assert_equal(_results(path), _results(reference_store))
    with pytest.raises(ConfigError, match="either workers .* or scheduler"):
        run_sweep(parse_experiment(NOISY.format(extra="")), tmp_path / "t.zarr", workers=2, scheduler="tcp://x:1")


def _point_threads() -> list[str]:
    import threading

    return [thread.name for thread in threading.enumerate() if thread.name.startswith("point_")]


def test_points_of_a_protocol_declared_for_threads_run_on_threads_of_this_process(tmp_path, reference_store):
    import socket

    from plasticity.protocols import get_protocol

    assert get_protocol("hopfield.capacity").threads and get_protocol("sweep_protocols:noisy_mean_on_threads").threads
    assert not get_protocol("sweep_protocols:noisy_mean").threads
    text = NOISY.format(extra="delay = 0.02").replace("sweep_protocols:noisy_mean", "sweep_protocols:noisy_mean_on_threads")
    path = tmp_path / "s.zarr"
    summary = run_sweep(parse_experiment(text), path, workers=2, progress=False)
    assert (summary.done, summary.ran, summary.failed) == (20, 20, [])
    stored, reference = _results(path), _results(reference_store)
    for name in reference.data_vars:
        np.testing.assert_array_equal(stored[name].values, reference[name].values, err_msg=name)
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert set(xr.open_zarr(path)["point_worker"].values.ravel()) == {f"{here}/point_0", f"{here}/point_1"}
    assert _point_threads() == []  # the threads end with the sweep


@pytest.mark.parametrize("protocol, loads", [("hopfield.capacity", "[0.05, 0.1, 0.2, 0.3]"),
                                             ("dense.capacity", "[0.5, 1.0, 2.0, 3.0]")])
def test_the_capacity_curve_on_threads_equals_the_serial_sweep(tmp_path, protocol, loads):
    text = f"""
protocol = "{protocol}"
backend = "numba"
seed = 3
[params]
n = 64
trials = 4
flip = 0.1
[sweep]
load = {loads}
repeats = 2
"""
    serial, threaded = tmp_path / "serial.zarr", tmp_path / "threaded.zarr"
    run_sweep(parse_experiment(text), serial, workers=0, progress=False)
    run_sweep(parse_experiment(text), threaded, workers=2, progress=False)
    assert all("/point_" in worker for worker in xr.open_zarr(threaded)["point_worker"].values.ravel())
    xr.testing.assert_identical(_results(threaded), _results(serial).assign_attrs(_results(threaded).attrs))


def test_a_shape_error_on_threads_stops_the_sweep_and_keeps_the_points_written(tmp_path):
    experiment = parse_experiment(
        'protocol = "sweep_protocols:ragged_on_threads"\nbackend = "numpy"\n[sweep]\nn = [3, 4]\nrepeats = 3\n'
    )
    path = tmp_path / "r.zarr"
    with pytest.raises(PlasticityError, match=r"output changed shape at point"):
        run_sweep(experiment, path, workers=2, progress=False)
    assert _point_threads() == [] and not lock_path(path).exists()
    store = xr.open_zarr(path).load()  # a valid store holding the points written before the error
    done = store["done"].values.ravel()
    assert 1 <= done.sum() < 6 and np.isnan(store["x"].values.reshape(6, -1)[~done]).all()
    assert not np.isnan(store["x"].values.reshape(6, -1)[done]).any()


def _done_count(path: Path) -> int:
    try:
        return int(np.asarray(zarr.open_group(path, mode="r", use_consolidated=False)["done"][...]).sum())
    except Exception:  # the store is still being created
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("protocol, workers, delay", [
    ("sweep_protocols:noisy_mean", "1", 0.1),
    ("sweep_protocols:noisy_mean_on_threads", "2", 0.2),  # points on two threads of the killed process
])
def test_sweep_killed_with_sigkill_then_resumed_equals_the_uninterrupted_sweep(tmp_path, reference_store, protocol,
                                                                               workers, delay):
    toml = tmp_path / "e.toml"
    # Same points as the reference except for a delay that does not change the values.
    text = NOISY.format(extra=f"delay = {delay}").replace("sweep_protocols:noisy_mean", protocol)
    toml.write_text(text)
    path = tmp_path / "s.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "plasticity.cli", "sweep", str(toml), "-o", str(path), "--workers", workers, "-q"]
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _done_count(path) < 4:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.05)
        # A second writer, fresh or resuming, is refused while the sweep runs.
        for resume in (False, True):
            with pytest.raises(StoreLockedError, match=rf"being written by another sweep \(pid {process.pid} on host"):
                run_sweep(parse_experiment(text), path, resume=resume, workers=0, progress=False)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        try:  # the killed command's dask worker processes
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.stderr.close()
    killed_at = _done_count(path)
    assert 4 <= killed_at < 20
    resumed = subprocess.run(command[:-3] + ["--resume", "--workers", "0", "-q"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({20 - killed_at} run now" in resumed.stdout
    assert f"took over the lock of {path}" in resumed.stderr and f"pid {process.pid} on host" in resumed.stderr
    assert not lock_path(path).exists()
    stored, reference = _results(path), _results(reference_store)
    for name in reference.data_vars:
        np.testing.assert_array_equal(stored[name].values, reference[name].values, err_msg=name)
    assert stored.attrs["points_done"] == 20


HOLD_LOCK = """
import sys, time
from plasticity.integrity import acquire_lock
acquire_lock(sys.argv[1], command="holder")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holders_lock_is_taken_over(tmp_path, capsys):
    path = tmp_path / "s.zarr"
    experiment = parse_experiment(NOISY.format(extra=""))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        record = lock_holder(path)
        assert record["pid"] == holder.pid and record["command"] == "holder"
        for resume in (False, True):  # a fresh sweep and a resume alike
            with pytest.raises(StoreLockedError) as error:
                run_sweep(experiment, path, resume=resume, workers=0, progress=False)
            assert f"pid {holder.pid} on host {record['host']}, started {record['start_time']}" in str(error.value)
        assert not path.exists()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        holder.stdout.close()
    assert lock_holder(path) is None and lock_path(path).exists()  # left behind by the killed process
    summary = run_sweep(experiment, path, workers=0, progress=False)
    assert summary.done == 20
    assert f"took over the lock of {path}" in capsys.readouterr().err
    assert not lock_path(path).exists()


def test_seed_by_gives_points_that_differ_only_in_other_keys_the_same_seed(tmp_path):
    grid = Grid({"rule": ("a", "b"), "load": (0.1, 0.2, 0.3)}, repeats=2, seed_by=("load", "repeat"))
    assert [grid.seed_index(i) for i in range(grid.size)] == [0, 1, 2, 3, 4, 5] * 2
    assert [Grid(grid.axes, 2, ("repeat",)).seed_index(i) for i in range(grid.size)] == [0, 1] * 6
    assert [Grid(grid.axes, 2).seed_index(i) for i in range(grid.size)] == list(range(12))  # by default: each its own
    text = NOISY.format(extra="").replace("repeats = 2", 'repeats = 2\nseed_by = ["repeat"]')
    experiment = parse_experiment(text)
    path = tmp_path / "paired.zarr"
    run_sweep(experiment, path, workers=0, progress=False)
    store = xr.open_zarr(path).load()
    assert json.loads(store.attrs["seed_by"]) == ["repeat"] and "seed_by = [" in store.attrs["experiment_toml"]
    noise = (store["samples"] - store["mu"]) / store["scale"]  # the standard normal draws of each point
    for repeat in (0, 1):
        draws = noise.sel(repeat=repeat).values.reshape(-1, 5)
        np.testing.assert_allclose(draws, np.broadcast_to(draws[0], draws.shape), rtol=1e-5, atol=1e-6)
    assert not np.allclose(noise.sel(repeat=0).values, noise.sel(repeat=1).values)
    # A changed setting refuses to resume, either way.
    with pytest.raises(ConfigError, match=r'seed_by: \["repeat"\] in the store, "\(absent\)" now'):
        run_sweep(parse_experiment(NOISY.format(extra="")), path, resume=True, workers=0, progress=False)
    assert run_sweep(experiment, path, resume=True, workers=0, progress=False).ran == 0


@pytest.mark.parametrize("seed_by, message", [
    ('"repeat"', "must be a list of swept keys"),
    ('["rule"]', r"names 'rule', which is not swept; valid keys: mu, scale, repeat"),
    ('["mu", "mu", "repeat"]', "names a key twice"),
    ('["mu"]', "must include 'repeat' when repeats = 2"),
])
def test_bad_seed_by_is_refused(seed_by, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment(NOISY.format(extra="").replace("repeats = 2", f"repeats = 2\nseed_by = {seed_by}"))


@pytest.mark.parametrize("start_cost, started", [(100.0, []), (0.01, [2])])
def test_local_workers_start_only_when_the_points_left_are_worth_their_start_up(tmp_path, monkeypatch, start_cost,
                                                                                 started):
    import plasticity.sweep as sweep

    calls = []
    monkeypatch.setattr(sweep, "WORKER_START_S", start_cost)
    monkeypatch.setattr(sweep, "_start_workers", lambda processes: calls.append(processes))
    experiment = parse_experiment(NOISY.format(extra="delay = 0.01"))
    summary = run_sweep(experiment, tmp_path / "s.zarr", workers=2, progress=False)
    assert summary.done == 20 and calls == started  # decided once, after two points showed their cost
