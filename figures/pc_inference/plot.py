"""Energy of the last training batch against inference step for several inference rates gamma,
relative to its value after the feedforward sweep, mean and standard deviation over repeats. Drawn from the store of experiment.toml."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.figures import save_figure  # noqa: E402


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    store = stores["experiment"]
    energy = store["energy_trajectory"]
    if "done" in store:
        energy = energy.where(store["done"])
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, energy.sizes["gamma"]))
    for color, gamma in zip(colors, energy["gamma"].values):
        curve = energy.sel(gamma=gamma)
        curve = curve / curve.isel(inference_step=0)
        mean, std = curve.mean("repeat"), curve.std("repeat")
        ax.errorbar(curve["inference_step"], mean, yerr=std, color=color, capsize=1.5, lw=1.2,
                    errorevery=5, label=f"γ = {gamma:g}")
    ax.set(xlabel="inference step", ylabel="energy E(t) / E(0) (ratio)",
           title=f"PC inference, {energy.sizes['repeat']} seeds (mean ± s.d.)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, outdir, "pc_inference")
