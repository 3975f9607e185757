"""Test accuracy on digits against epoch for predictive coding (pc), Z-IL, FPA and backpropagation
(bp), mean and standard deviation over repeats. Drawn from the store of experiment.toml."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.figures import save_figure  # noqa: E402

LABELS = {"pc": "PC (T = 20)", "zil": "Z-IL", "fpa": "FPA", "bp": "backprop"}
#: Modes that share a repeat's seed and are equal update for update (Z-IL and backprop, and FPA at
#: its fixed point) draw the same curve: distinct markers and a small horizontal offset per mode
#: keep each one visible.
STYLES = {"pc": ("o", "-"), "zil": ("s", "--"), "fpa": ("^", ":"), "bp": ("x", "-.")}
DODGE = 0.08


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    store = stores["experiment"]
    accuracy = store["test_accuracy"]
    if "done" in store:
        accuracy = accuracy.where(store["done"])
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    modes = accuracy["mode"].values
    for index, mode in enumerate(modes):
        curve = 100 * accuracy.sel(mode=mode)
        mean, std = curve.mean("repeat"), curve.std("repeat")
        marker, dashes = STYLES.get(str(mode), ("o", "-"))
        offset = DODGE * (index - (len(modes) - 1) / 2)
        ax.errorbar(curve["epoch"] + offset, mean, yerr=std, marker=marker, linestyle=dashes, ms=4, mfc="none", capsize=2,
                    label=LABELS.get(str(mode), str(mode)))
    ax.set(xlabel="epoch (passes over the training set; modes offset for legibility)", ylabel="test accuracy (%)",
           title=f"digits, {accuracy.sizes['repeat']} seeds shared by the modes (mean ± s.d.)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, outdir, "pc_vs_bp")
