"""Capacity analysis (success curves, critical load, finite size), overlaps and basins, figure scripts."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from plasticity.analysis import basin_size, critical_load, finite_size, overlap_trajectory, success_curve
from plasticity.errors import ConfigError
from plasticity.networks.dense import DenseAssociativeMemory
from plasticity.networks.hopfield import HopfieldNetwork, capacity
from plasticity.networks.uhn import retrieval

ROOT = Path(__file__).resolve().parent.parent


def ramp(loads, alpha, trials=100, width=0.1):
    """Success arrays whose mean falls linearly through 0.5 at ``alpha``."""
    fraction = np.clip(0.5 - (loads - alpha) / width, 0.0, 1.0)
    k = np.round(fraction * trials).astype(int)
    return np.arange(trials)[None, :] < k[:, None]


def test_success_curve_means_and_standard_errors():
    data = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    success = xr.DataArray(data, dims=("load", "trial"), coords={"load": [0.1, 0.2, 0.3]})
    curve = success_curve(success)
    np.testing.assert_allclose(curve["success"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(curve["stderr"], [0.0, 0.25, 0.0])
    np.testing.assert_array_equal(curve["count"], [4, 4, 4])


def test_critical_load_interpolates_and_bootstraps():
    loads = np.round(np.arange(0.05, 0.31, 0.02), 2)
    success = xr.DataArray(ramp(loads, 0.161, trials=200), dims=("load", "trial"), coords={"load": loads})
    crit = critical_load(success, n_boot=300, seed=1)
    assert abs(float(crit.critical_load) - 0.161) < 0.002
    assert float(crit.ci_low) <= float(crit.critical_load) <= float(crit.ci_high)
    assert float(crit.ci_high) - float(crit.ci_low) < 0.02
    never = xr.DataArray(np.ones((3, 5), bool), dims=("load", "trial"), coords={"load": [0.1, 0.2, 0.3]})
    assert np.isnan(float(critical_load(never, n_boot=10).critical_load))
    with pytest.raises(ConfigError, match="level must be in"):
        critical_load(success, level=1.5)
    with pytest.raises(ConfigError, match="load_dim 'patterns'"):
        critical_load(success, load_dim="patterns")


def test_finite_size_keeps_dimensions_and_extrapolates():
    loads = np.round(np.arange(0.05, 0.41, 0.01), 2)
    sizes = np.array([100, 400, 1600])
    truth = 0.14 + 0.6 / np.sqrt(sizes)
    data = np.stack([np.stack([ramp(loads, a, trials=100)] * 2) for a in truth])  # (n, repeat, load, trial)
    success = xr.DataArray(data, dims=("n", "repeat", "load", "trial"), coords={"n": sizes, "load": loads})
    fs = finite_size(success, n_boot=50)
    np.testing.assert_allclose(fs["critical_load"], truth, atol=0.003)
    assert abs(float(fs["alpha_inf"]) - 0.14) < 0.005 and abs(float(fs["slope"]) - 0.6) < 0.1
    rules = xr.concat([success, success], dim=xr.DataArray(["hebbian", "storkey"], dims="rule"))
    assert critical_load(rules, n_boot=10)["critical_load"].dims == ("rule", "n")


def test_overlaps_and_basins():
    x = np.random.default_rng(0).choice([-1.0, 1.0], size=(8, 200))
    net = HopfieldNetwork(x)
    cue = x[:1] * np.where(np.arange(200) < 40, -1.0, 1.0)
    out = net.retrieve(cue, record=True)
    m = overlap_trajectory(out.trajectory, x)
    assert m.dims == ("sweep", "trial", "pattern")
    assert float(m[0, 0, 0]) == pytest.approx(0.6) and float(m[-1, 0, 0]) == 1.0
    basins = basin_size(net, patterns=[0, 1], trials=8)
    assert basins["success"].dims == ("pattern", "flip")
    assert np.all(basins["basin"] >= 0.3) and np.all(basins["basin"] <= 0.5)
    assert float(basins["success"].sel(flip=0.0).min()) == 1.0
    crowded = HopfieldNetwork(np.random.default_rng(1).choice([-1.0, 1.0], size=(60, 200)))
    assert float(basin_size(crowded, patterns=[0, 1], trials=8)["basin"].max()) < 0.3
    dense = DenseAssociativeMemory(x, power=3)
    assert float(basin_size(dense, patterns=[0], trials=5)["basin"][0]) >= 0.4


def _plot_module(name):
    spec = importlib.util.spec_from_file_location(f"plot_{name}", ROOT / "figures" / name / "plot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stacked(run, axes):
    """Runs stacked like a sweep store: swept dims then 'repeat', then the protocol's own dims."""
    grid = [xr.DataArray(values, dims=name, name=name) for name, values in axes.items()]

    def build(level, params):
        if level == len(grid):
            return xr.concat([run(repeat=r, **params) for r in range(2)], dim="repeat")
        return xr.concat([build(level + 1, {**params, grid[level].name: v.item()}) for v in grid[level]], dim=grid[level])

    return build(0, {})


def test_hopfield_capacity_plot_draws_from_small_stores(tmp_path):
    loads = [0.05, 0.15, 0.3, 0.5]
    stores = {
        rule: _stacked(
            lambda repeat, n, load, rule=rule: capacity(n=n, rule=rule, load=load, trials=4, seed=repeat).drop_vars("trial"),
            {"n": [40, 80], "load": loads},
        )
        for rule in ("hebbian", "storkey", "pseudoinverse")
    }
    stores["hebbian"]["done"] = stores["hebbian"]["alpha"] > 0
    paths = _plot_module("hopfield_capacity").plot(stores, tmp_path)
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)


def test_uhn_retrieval_plot_draws_from_small_stores(tmp_path):
    def run(repeat, similarity, separation, patterns, cue):
        return retrieval(similarity=similarity, separation=separation, patterns=patterns, cue=cue, seed=repeat)

    axes = {"similarity": ["dot", "manhattan"], "separation": ["softmax", "max"], "patterns": [10, 40]}
    stores = {cue: _stacked(lambda repeat, cue=cue, **p: run(repeat, cue=cue, **p), axes) for cue in ("noise", "mask")}
    paths = _plot_module("uhn_retrieval").plot(stores, tmp_path)
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
