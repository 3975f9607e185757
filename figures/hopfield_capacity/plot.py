"""Capacity of classical Hopfield networks: success against load for N in {250, 500, 1000, 2000}
and the Hebbian, Storkey and pseudo-inverse rules, with the critical loads (50% success) and their
bootstrap 95% intervals. Drawn from the stores of hebbian.toml, storkey.toml, pseudoinverse.toml."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.analysis import critical_load, success_curve  # noqa: E402
from plasticity.figures import save_figure  # noqa: E402

RULES = ("hebbian", "storkey", "pseudoinverse")
AGS = 0.138  # Amit, Gutfreund and Sompolinsky (1985), N -> infinity, Hebbian


def _success(store: xr.Dataset) -> xr.DataArray:
    success = store["success"].astype(float)
    if "done" in store:
        success = success.where(store["done"])
    return success


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    rules = [rule for rule in RULES if rule in stores]
    fig, axes = plt.subplots(1, len(rules) + 1, figsize=(4.2 * (len(rules) + 1), 3.6), squeeze=False)
    axes = axes[0]
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, 4))
    for ax, rule in zip(axes, rules):
        success = _success(stores[rule])
        curve = success_curve(success)
        crit = critical_load(success, n_boot=500)
        sizes = success["n"].values
        for color, n in zip(colors, sizes):
            c = curve.sel(n=n)
            ax.errorbar(c["load"], c["success"], yerr=c["stderr"], color=color, marker="o", ms=3, capsize=2, label=f"N = {n}")
        ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
        if rule == "hebbian":
            ax.axvline(AGS, color="k", lw=0.8, ls="--", label="0.138 (AGS)")
        ax.set(title=f"{rule} storage", xlabel="load P / N (patterns per unit)", ylabel="fraction retrieved (overlap ≥ 0.95)", ylim=(-0.03, 1.03))
        ax.legend(fontsize=7)
        loads = crit["critical_load"].values
        if np.isnan(loads).all():  # success never fell below 50%: the critical load lies beyond the swept loads
            rule_label = f"{rule}: > {float(success['load'].max()):.2f} (not reached)"
            axes[-1].plot([], [], marker="s", ls="none", label=rule_label)
            continue
        axes[-1].errorbar(
            sizes, loads,
            yerr=[crit["critical_load"] - crit["ci_low"], crit["ci_high"] - crit["critical_load"]],
            marker="s", capsize=3, label=rule,
        )
    last = axes[-1]
    last.axhline(AGS, color="k", lw=0.8, ls="--", label="0.138 (AGS, Hebbian)")
    every_size = sorted({int(n) for rule in rules for n in stores[rule]["n"].values})
    last.set(xscale="log", xlabel="network size N (units)", ylabel="critical load at 50% success", title="critical load (95% bootstrap CI)")
    last.set_xticks(every_size, [str(n) for n in every_size])
    last.minorticks_off()
    last.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, outdir, "hopfield_capacity")
