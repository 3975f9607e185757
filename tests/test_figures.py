"""Figures redrawn from saved stores: discovery, missing stores and their cost, images, --rerun, --make-missing."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import xarray as xr

from plasticity.errors import ConfigError
from plasticity.experiment import load_experiment
from plasticity.figures import COSTS_FILE, describe_figures, discover, redraw
from plasticity.sweep import run_sweep

SWEEP = """
protocol = "sweep_protocols:noisy_mean"
backend = "numpy"
seed = 1
[params]
n = 20
[sweep]
mu = {start = 0.0, stop = 1.0, num = 5}
repeats = 3
"""
SINGLE = """
protocol = "sweep_protocols:noisy_mean"
backend = "numpy"
[params]
n = 50
mu = 0.5
"""
PLOT = '''
"""Sample mean against the true mean, with error bars over repeats."""
import matplotlib.pyplot as plt

from plasticity.figures import save_figure


def plot(stores, outdir):
    sweep, single = stores["means"], stores["single"]
    mean = sweep["sample_mean"]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.errorbar(mean["mu"], mean.mean("repeat"), yerr=mean.std("repeat"), marker="o", label="sweep")
    ax.axhline(float(single["sample_mean"]), color="k", linestyle=":", label="single run")
    ax.set_xlabel("true mean mu (a.u.)")
    ax.set_ylabel("sample mean (a.u.)")
    ax.legend()
    return save_figure(fig, outdir, "means")
'''


@pytest.fixture
def figures_dir(tmp_path):
    folder = tmp_path / "figures" / "demo"
    folder.mkdir(parents=True)
    (folder / "means.toml").write_text(SWEEP)
    (folder / "single.toml").write_text(SINGLE)
    (folder / "plot.py").write_text(textwrap.dedent(PLOT))
    (tmp_path / "figures" / "not_a_figure").mkdir()
    return tmp_path / "figures"


def _assert_drawn(path):
    assert path.exists() and path.stat().st_size > 5_000
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and float(np.std(pixels[..., :3])) > 0.05  # not a blank canvas


def test_discovery_and_listing(figures_dir):
    assert list(discover(figures_dir)) == ["demo"]
    assert describe_figures(figures_dir) == "demo: means (not run), single (not run)"
    with pytest.raises(ConfigError, match="no figure 'nope'.*figures: demo"):
        redraw("nope", root=figures_dir)


def test_missing_store_names_it_and_the_command_that_makes_it(figures_dir):
    with pytest.raises(ConfigError) as error:
        redraw("demo", root=figures_dir)
    store = figures_dir / "demo" / "means.zarr"
    assert f"needs the store {store}, which does not exist" in str(error.value)
    assert f"plasticity sweep {figures_dir / 'demo' / 'means.toml'} -o {store}" in str(error.value)


def test_redraw_from_saved_stores_writes_png_and_pdf(figures_dir, tmp_path):
    folder = figures_dir / "demo"
    run_sweep(load_experiment(folder / "means.toml"), folder / "means.zarr", workers=0, progress=False)
    with pytest.raises(ConfigError, match="plasticity run .*single.toml -o .*single.zarr"):
        redraw("demo", root=figures_dir)
    from plasticity.protocols import run_protocol
    from plasticity.storage import write_run

    spec = load_experiment(folder / "single.toml")
    write_run(run_protocol(spec.protocol, spec.params, backend="numpy"), folder / "single.zarr")
    outdir = tmp_path / "images"
    paths = redraw("demo", root=figures_dir, outdir=outdir)
    assert sorted(p.name for p in paths) == ["means.pdf", "means.png"]
    _assert_drawn(outdir / "means.png")
    assert (outdir / "means.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(os.listdir(outdir)) == ["means.pdf", "means.png"]  # no staging folder left


def test_rerun_recomputes_the_stores_then_draws(figures_dir):
    paths = redraw("demo", root=figures_dir, rerun=True, workers=0)
    folder = figures_dir / "demo"
    assert (folder / "means.zarr").is_dir() and (folder / "single.zarr").is_dir()
    _assert_drawn(folder / "means.png")
    assert {p.parent for p in paths} == {folder}
    assert describe_figures(figures_dir) == "demo: means (saved), single (saved)"
    redraw("demo", root=figures_dir, rerun=True, workers=0)  # replaces the stores in place
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


def test_missing_stores_are_made_when_asked_and_their_cost_is_recorded_and_quoted(figures_dir, capsys):
    folder = figures_dir / "demo"
    with pytest.raises(ConfigError, match="making it runs 15 points; what that takes is not recorded yet"):
        redraw("demo", root=figures_dir)
    redraw("demo", root=figures_dir, make_missing=True, workers=0)
    assert f"{folder / 'means.zarr'}: 15 of 15 points done" in capsys.readouterr().out  # the store's own name
    costs = json.loads((folder / COSTS_FILE).read_text())
    assert costs["means"]["points"] == 15 and costs["single"]["points"] == 1
    assert costs["means"]["compute_s"] >= 0 and "cores)" in costs["means"]["measured"]
    made = (folder / "single.zarr").stat().st_mtime_ns
    shutil.rmtree(folder / "means.zarr")
    with pytest.raises(ConfigError) as error:
        redraw("demo", root=figures_dir)
    assert "making it runs 15 points: about 0 s of compute" in str(error.value)
    assert "plasticity figures demo --make-missing" in str(error.value)
    assert "means (not run; 0 s of compute to make), single (saved)" in describe_figures(figures_dir)
    redraw("demo", root=figures_dir, make_missing=True, workers=0)
    assert (folder / "single.zarr").stat().st_mtime_ns == made  # only the missing store was made


FIGURES = Path(__file__).resolve().parent.parent / "figures"


def _zil_and_bp(tmp_path, overrides):
    """The pc_vs_bp experiment, small and in float64, swept over Z-IL and backprop only."""
    experiment = load_experiment(FIGURES / "pc_vs_bp" / "experiment.toml", [
        'dtype="float64"', "params.epochs=1", "params.sizes=[64, 8, 10]", 'sweep.mode=["zil", "bp"]',
        "sweep.repeats=1", *overrides])
    path = tmp_path / f"zil_bp{len(overrides)}.zarr"
    run_sweep(experiment, path, workers=0, progress=False)
    store = xr.open_zarr(path).load()
    return store.sel(mode="zil"), store.sel(mode="bp")


def test_pc_vs_bp_compares_zil_and_backprop_on_common_seeds_where_their_curves_coincide(tmp_path):
    assert load_experiment(FIGURES / "pc_vs_bp" / "experiment.toml").seed_by == ("repeat",)
    zil, bp = _zil_and_bp(tmp_path, [])
    np.testing.assert_array_equal(zil["test_accuracy"].values, bp["test_accuracy"].values)
    np.testing.assert_array_equal(zil["train_accuracy"].values, bp["train_accuracy"].values)
    np.testing.assert_allclose(zil["train_loss"].values, bp["train_loss"].values, rtol=1e-12)
    # Seeded by point, as before seed_by, the two start apart and their curves differ.
    zil, bp = _zil_and_bp(tmp_path, ["sweep.seed_by=['mode', 'repeat']"])
    assert not np.allclose(zil["train_loss"].values, bp["train_loss"].values, rtol=1e-3)


def test_prospective_configuration_shares_seeds_so_one_layer_pc_and_backprop_coincide(tmp_path):
    """figures/prospective_configuration: with one weight layer pc has nothing to infer and its update is
    backprop's, so on shared seeds (seed_by: same split, initial weights and order) the two learn the same
    (equal losses; their alignment is 1, one linear layer and one example per update); plot.py draws it."""
    path = FIGURES / "prospective_configuration" / "experiment.toml"
    assert load_experiment(path).seed_by == ("repeat",)
    experiment = load_experiment(path, ["sweep.depth=[1, 2]", "sweep.repeats=1", "params.train_examples=3", "params.T=4",
                                        "params.test_fraction=0.01"])
    run_sweep(experiment, tmp_path / "experiment.zarr", workers=0, progress=False)
    store = xr.open_zarr(tmp_path / "experiment.zarr").load()
    shallow = store.sel(depth=1)
    np.testing.assert_allclose(shallow["train_loss"].sel(mode="pc"), shallow["train_loss"].sel(mode="bp"), rtol=1e-12)
    np.testing.assert_allclose(shallow["target_alignment"], 1.0, rtol=1e-12)
    import importlib.util

    spec = importlib.util.spec_from_file_location("_plot_prospective", path.parent / "plot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = module.plot({"experiment": store}, tmp_path)
    assert sorted(p.name for p in paths) == ["prospective_configuration.pdf", "prospective_configuration.png"]
    _assert_drawn(tmp_path / "prospective_configuration.png")
