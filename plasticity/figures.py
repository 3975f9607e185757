"""Figures redrawn from saved runs.

A figure is a folder ``figures/NAME/`` holding one or more experiment TOML
files and ``plot.py``. The store of ``figures/NAME/STEM.toml`` is
``figures/NAME/STEM.zarr``, written by ``plasticity sweep`` (a TOML with a
``[sweep]`` table) or ``plasticity run``. ``plot.py`` defines
``plot(stores, outdir) -> list[Path]``, drawing from the opened stores keyed by
TOML stem; it never simulates. Images are drawn into a staging folder and then
moved into place with ``os.replace``, so an image file is always either the old
one or the new one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from plasticity.errors import ConfigError

__all__ = ["Figure", "discover", "describe_figures", "redraw", "save_figure"]


@dataclass(frozen=True)
class Figure:
    """A figure folder: its name, experiment files and plot script."""

    name: str
    folder: Path

    @property
    def experiments(self) -> list[Path]:
        return sorted(self.folder.glob("*.toml"))

    @property
    def plot_script(self) -> Path:
        return self.folder / "plot.py"

    def store(self, experiment: Path) -> Path:
        return self.folder / f"{experiment.stem}.zarr"

    def make_command(self, experiment: Path) -> str:
        """The command that writes the store of ``experiment``."""
        from plasticity.experiment import load_experiment

        verb = "sweep" if load_experiment(experiment).has_sweep else "run"
        return f"plasticity {verb} {experiment} -o {self.store(experiment)}"


def discover(root: str | Path = "figures") -> dict[str, Figure]:
    """Every figure folder under ``root`` (a folder with ``plot.py`` and at least one ``*.toml``)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"figures directory {str(root)!r} does not exist (give --figures-dir)")
    figures = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / "plot.py").is_file() and any(folder.glob("*.toml")):
            figures[folder.name] = Figure(folder.name, folder)
    return figures


def _get(name: str, root: str | Path) -> Figure:
    figures = discover(root)
    if name not in figures:
        raise ConfigError(
            f"no figure {name!r} under {str(root)!r}; figures: {', '.join(figures) or '(none)'}"
        )
    return figures[name]


def describe_figures(root: str | Path = "figures") -> str:
    """One line per figure: its name, experiments and whether their stores are saved."""
    figures = discover(root)
    if not figures:
        return f"no figures under {root}"
    lines = []
    for figure in figures.values():
        parts = [
            f"{path.stem} ({'saved' if figure.store(path).exists() else 'not run'})" for path in figure.experiments
        ]
        lines.append(f"{figure.name}: {', '.join(parts)}")
    return "\n".join(lines)


def _load_plot(figure: Figure) -> Any:
    spec = importlib.util.spec_from_file_location(f"plasticity_figure_{figure.name}", figure.plot_script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "plot", None)):
        raise ConfigError(f"{figure.plot_script} must define plot(stores, outdir) -> list of paths")
    return module.plot


def _rerun(figure: Figure, experiment: Path, workers: int | None) -> None:
    from plasticity.experiment import load_experiment
    from plasticity.protocols import run_protocol
    from plasticity.storage import replace_dir, write_run
    from plasticity.sweep import run_sweep

    spec = load_experiment(experiment)
    target = figure.store(experiment)
    if not spec.has_sweep:
        dataset = run_protocol(spec.protocol, spec.params, backend=spec.backend, seed=spec.seed,
                               dtype=spec.dtype, device=spec.device)
        dataset.attrs["experiment_toml"] = spec.to_toml()
        write_run(dataset, target)
        return
    temporary = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        summary = run_sweep(spec, temporary, workers=workers)
        print(summary)
        replace_dir(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def redraw(
    name: str,
    *,
    root: str | Path = "figures",
    outdir: str | Path | None = None,
    rerun: bool = False,
    workers: int | None = None,
) -> list[Path]:
    """Draw figure ``name`` from its saved stores (after recomputing them if ``rerun``); return the images."""
    import matplotlib

    from plasticity.storage import open_store

    matplotlib.use("Agg")
    figure = _get(name, root)
    plot = _load_plot(figure)
    stores: dict[str, xr.Dataset] = {}
    for experiment in figure.experiments:
        if rerun:
            _rerun(figure, experiment, workers)
        store = figure.store(experiment)
        if not store.exists():
            raise ConfigError(
                f"figure {name!r} needs the store {store}, which does not exist; make it with: "
                f"{figure.make_command(experiment)}  (or: plasticity figures {name} --rerun)"
            )
        stores[experiment.stem] = open_store(store)
    outdir = Path(outdir) if outdir is not None else figure.folder
    outdir.mkdir(parents=True, exist_ok=True)
    staging = outdir / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        drawn = plot(stores, staging)
        written = []
        for path in drawn or []:
            path = Path(path)
            if path.parent.resolve() != staging.resolve():
                raise ConfigError(f"{figure.plot_script}: plot() must write its images into outdir, not {path}")
            final = outdir / path.name
            os.replace(path, final)
            written.append(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def save_figure(fig: Any, outdir: str | Path, name: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save the matplotlib figure ``fig`` as ``outdir/name.FORMAT`` for each format, close it, return the paths."""
    import matplotlib.pyplot as plt

    paths = []
    for extension in formats:
        path = Path(outdir) / f"{name}.{extension}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths
