"""Figures redrawn from saved runs.

A figure is a folder ``figures/NAME/`` holding one or more experiment TOML
files and ``plot.py``. The store of ``figures/NAME/STEM.toml`` is
``figures/NAME/STEM.zarr``, written by ``plasticity sweep`` (a TOML with a
``[sweep]`` table) or ``plasticity run``. ``plot.py`` defines
``plot(stores, outdir) -> list[Path]``, drawing from the opened stores keyed by
TOML stem; it never simulates. Images are drawn into a staging folder and then
moved into place with ``os.replace``, so an image file is always either the old
one or the new one.

What making each store cost is kept in ``figures/NAME/costs.json`` (points,
seconds of compute, where and when measured), written whenever this module
makes a store, so that a missing store's message says what making it takes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from plasticity.errors import ConfigError

__all__ = ["Figure", "discover", "describe_figures", "redraw", "save_figure", "COSTS_FILE"]

#: The file of a figure folder recording what making each of its stores cost.
COSTS_FILE = "costs.json"


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

    def costs(self) -> dict[str, dict[str, Any]]:
        """What making each store cost, by TOML stem (``costs.json``; empty when none is recorded)."""
        path = self.folder / COSTS_FILE
        if not path.exists():
            return {}
        try:
            costs = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON ({error})") from None
        return costs if isinstance(costs, dict) else {}

    def record_cost(self, experiment: Path, points: int, compute_s: float) -> None:
        """Record (atomically) what making the store of ``experiment`` cost."""
        from plasticity.provenance import now_iso

        costs = self.costs()
        costs[experiment.stem] = {"points": points, "compute_s": round(compute_s, 1),
                                  "measured": f"{now_iso()} on {platform.node()} ({os.cpu_count()} cores)"}
        temporary = self.folder / f".{COSTS_FILE}.tmp-{uuid.uuid4().hex[:8]}"
        temporary.write_text(json.dumps(costs, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.folder / COSTS_FILE)

    def cost_text(self, experiment: Path) -> str:
        """What making the store of ``experiment`` takes, as recorded, in words."""
        from plasticity.experiment import load_experiment
        from plasticity.sweep import Grid, default_workers

        spec = load_experiment(experiment)
        points = Grid.from_experiment(spec).size if spec.has_sweep else 1
        size = f"{points} point{'s' * (points != 1)}"
        recorded = self.costs().get(experiment.stem)
        if not recorded or recorded.get("points") != points:
            return f"making it runs {size}; what that takes is not recorded yet"
        compute, cores = float(recorded["compute_s"]), default_workers()
        here = f", about {_duration(compute / min(cores, points))} on this machine's {cores} cores" if cores > 1 else ""
        return f"making it runs {size}: about {_duration(compute)} of compute{here} (measured {recorded['measured']})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


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
        parts = []
        for path in figure.experiments:
            recorded = figure.costs().get(path.stem)
            cost = f"; {_duration(float(recorded['compute_s']))} of compute to make" if recorded else ""
            parts.append(f"{path.stem} ({'saved' if figure.store(path).exists() else 'not run' + cost})")
        lines.append(f"{figure.name}: {', '.join(parts)}")
    return "\n".join(lines)


def _load_plot(figure: Figure) -> Any:
    spec = importlib.util.spec_from_file_location(f"plasticity_figure_{figure.name}", figure.plot_script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "plot", None)):
        raise ConfigError(f"{figure.plot_script} must define plot(stores, outdir) -> list of paths")
    return module.plot


def _make(figure: Figure, experiment: Path, workers: int | None) -> None:
    """Compute the store of ``experiment`` (replacing an old one only once the new one is whole)
    and record what it cost."""
    import time

    from plasticity.experiment import load_experiment
    from plasticity.protocols import run_protocol
    from plasticity.storage import replace_dir, write_run
    from plasticity.sweep import run_sweep

    spec = load_experiment(experiment)
    target = figure.store(experiment)
    if not spec.has_sweep:
        print(f"making {target} (one run of {spec.protocol})", flush=True)
        start = time.perf_counter()
        dataset = run_protocol(spec.protocol, spec.params, backend=spec.backend, seed=spec.seed,
                               dtype=spec.dtype, device=spec.device)
        dataset.attrs["experiment_toml"] = spec.to_toml()
        write_run(dataset, target)
        figure.record_cost(experiment, 1, time.perf_counter() - start)
        return
    temporary = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        summary = run_sweep(spec, temporary, workers=workers, name=str(target))
        print(summary)
        replace_dir(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    if summary.done == summary.n_points:
        import xarray as xr

        compute = float(xr.open_zarr(target)["point_wall_time"].sum())
        figure.record_cost(experiment, summary.n_points, compute)


def redraw(
    name: str,
    *,
    root: str | Path = "figures",
    outdir: str | Path | None = None,
    rerun: bool = False,
    make_missing: bool = False,
    workers: int | None = None,
) -> list[Path]:
    """Draw figure ``name`` from its saved stores and return the images.

    ``rerun`` recomputes every store first; ``make_missing`` computes the stores that do not exist
    (with progress). A missing store is otherwise a ConfigError naming it, what making it takes
    and the command that makes it.
    """
    import matplotlib

    from plasticity.storage import open_store

    matplotlib.use("Agg")
    figure = _get(name, root)
    plot = _load_plot(figure)
    stores: dict[str, xr.Dataset] = {}
    missing = [experiment for experiment in figure.experiments if not figure.store(experiment).exists()]
    if missing and not (rerun or make_missing):
        details = "; ".join(f"{figure.store(experiment)}, which does not exist: {figure.cost_text(experiment)}; "
                            f"make it with: {figure.make_command(experiment)}" for experiment in missing)
        raise ConfigError(
            f"figure {name!r} needs the store {details}. Or let this command make "
            f"{'it' if len(missing) == 1 else 'them'}: plasticity figures {name} --make-missing"
        )
    for experiment in figure.experiments:
        if rerun or experiment in missing:
            _make(figure, experiment, workers)
        stores[experiment.stem] = open_store(figure.store(experiment))
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
