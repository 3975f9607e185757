"""Learning capacity of local rules against Cover's count, and against their cost.

Reproduces the separability curve of Cover (1965), IEEE Trans. Electron. Comput. 14:326-334
(the fraction of dichotomies of p points in N dimensions that are linearly separable,
C(p, N) / 2^p against p / N, with its step to 0 at p / N = 2 as N grows; Gardner 1988,
J. Phys. A 21:257, capacity 2 at zero margin), as the success of the perceptron rule
(Rosenblatt 1958) trained to every item right:

(a) the fraction of trials meeting the criterion against load for seven rules on the same data
    (seed_by: every rule sees the same patterns, targets and order), N = 100, with Cover's
    count (the success of a learner that separates every separable data set);
(b) the perceptron rule for N = 25 ... 200 with Cover's count at each N;
(c) the critical load (50% success, 95% bootstrap interval) against N, Cover's 2 dashed;
(d) critical load against operations per synapse per step (``rule.cost()``);
(e) operations per synapse spent until the criterion was met (median over trials that met it);
(f) the epochs the perceptron rule took (median, 10-90% band), growing towards load 2, which is
    why a finite budget puts the measured critical load below Cover's 2.

Drawn from the stores of rules.toml and sizes.toml.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.analysis import cover_curve, critical_load, learning_cost, success_curve, time_to_criterion  # noqa: E402
from plasticity.figures import save_figure  # noqa: E402

MARKERS = "osD^v<>"


def _met(store: xr.Dataset) -> xr.DataArray:
    met = store["met"].astype(float)
    return met.where(store["done"]) if "done" in store else met


def _complete(store: xr.Dataset, dim: str) -> xr.Dataset:
    """The entries along ``dim`` whose every point is done (a sweep still running draws what it has)."""
    if "done" not in store:
        return store
    done = store["done"].all([d for d in store["done"].dims if d != dim]).values
    return store.isel({dim: np.flatnonzero(done)})


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    rules_store, sizes_store = _complete(stores["rules"], "rule"), _complete(stores["sizes"], "n")
    fig, axes = plt.subplots(2, 3, figsize=(15.5, 9.0))
    axes = axes.reshape(-1)
    rules = [str(rule) for rule in rules_store["rule"].values]
    colors = dict(zip(rules, plt.cm.tab10(np.arange(len(rules)))))
    n = int(rules_store.attrs.get("n", 0)) or int(_param(rules_store, "n"))

    # (a) every rule on the same data
    ax = axes[0]
    curve = success_curve(_met(rules_store))
    fine = np.linspace(float(rules_store["load"].min()), float(rules_store["load"].max()), 200)
    ax.plot(fine, cover_curve(n, fine), color="k", lw=1.2, ls="--", label=f"Cover (1965), N = {n}")
    for marker, rule in zip(MARKERS, rules):
        c = curve.sel(rule=rule)
        ax.errorbar(c["load"], c["success"], yerr=c["stderr"], color=colors[rule], marker=marker, ms=3.5, lw=1,
                    capsize=2, mfc="none" if rule == "pc" else None, label=rule)
    ax.set(title=f"(a) rules on the same data, N = {n}", xlabel="load p / N (items per input)",
           ylabel="fraction of trials learning every item", ylim=(-0.03, 1.03))
    ax.legend(fontsize=7)

    # (b) perceptron rule against Cover's count at several N
    ax = axes[1]
    sizes = [int(size) for size in sizes_store["n"].values]
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, len(sizes)))
    curve = success_curve(_met(sizes_store))
    fine = np.linspace(float(sizes_store["load"].min()), float(sizes_store["load"].max()), 200)
    for color, size in zip(shades, sizes):
        c = curve.sel(n=size)
        ax.errorbar(c["load"], c["success"], yerr=c["stderr"], color=color, marker="o", ms=3, lw=1, capsize=2, label=f"N = {size}")
        ax.plot(fine, cover_curve(size, fine), color=color, lw=0.9, ls="--")
    ax.plot([], [], color="0.3", ls="--", lw=0.9, label="Cover (1965) at each N")
    ax.set(title="(b) perceptron rule, finite N", xlabel="load p / N (items per input)",
           ylabel="fraction of trials learning every item", ylim=(-0.03, 1.03))
    ax.legend(fontsize=7)

    # (c) critical load against N
    ax = axes[2]
    crit = critical_load(_met(sizes_store), n_boot=1000)
    ax.errorbar(sizes, crit["critical_load"], yerr=[crit["critical_load"] - crit["ci_low"], crit["ci_high"] - crit["critical_load"]],
                color="C0", marker="s", capsize=3, label=f"perceptron rule ({_param(sizes_store, 'epochs')} epochs at most)")
    ax.axhline(2.0, color="k", ls="--", lw=1, label="Cover (1965): 2 at every N")
    ax.set(xscale="log", title="(c) critical load (50% success, 95% CI)", xlabel="inputs N",
           ylabel="critical load p / N", ylim=(1.5, 2.3))
    ax.set_xticks(sizes, [str(size) for size in sizes])
    ax.minorticks_off()
    ax.legend(fontsize=7)

    # (d) capacity against cost
    ax = axes[3]
    cost = learning_cost(rules_store, n_boot=1000)
    for marker, rule in zip(MARKERS, rules):
        point = cost.sel(rule=rule)
        value = float(point["critical_load"])
        if np.isnan(value):  # never reached 50% success: drawn at 0
            ax.plot(float(point["operations_per_synapse"]), 0.0, marker=marker, color=colors[rule], ls="none",
                    mfc="none", label=f"{rule}: < {float(rules_store['load'].min()):.1f}")
            continue
        ax.errorbar(float(point["operations_per_synapse"]), value,
                    yerr=[[value - float(point["ci_low"])], [float(point["ci_high"]) - value]],
                    marker=marker, color=colors[rule], capsize=3, ls="none",
                    mfc="none" if rule == "pc" else None, label=f"{rule}: {value:.2f}")
    ax.axhline(2.0, color="k", ls="--", lw=1, label="Cover (1965): 2")
    ax.set(title="(d) capacity against cost", xlabel="operations per synapse per step (rule.cost())",
           ylabel="critical load p / N (50% success)")
    ax.legend(fontsize=7)

    # (e) operations spent learning
    ax = axes[4]
    for marker, rule in zip(MARKERS, rules):
        spent = cost["operations_to_learn"].sel(rule=rule)
        ax.plot(spent["load"], spent, marker=marker, color=colors[rule], ms=3.5, lw=1, mfc="none" if rule == "pc" else None, label=rule)
    ax.set(yscale="log", title="(e) work to learn", xlabel="load p / N (items per input)",
           ylabel="operations per synapse until every item is right")
    ax.legend(fontsize=7)

    # (f) time to criterion of the perceptron rule: it grows without bound towards load 2
    ax = axes[5]
    timing = time_to_criterion(sizes_store, quantiles=(0.1, 0.5, 0.9))
    for color, size in zip(shades, sizes):
        t = timing["epochs"].sel(n=size)
        ax.plot(t["load"], t.sel(quantile=0.5), color=color, marker="o", ms=3, lw=1, label=f"N = {size}, median")
        ax.fill_between(t["load"], t.sel(quantile=0.1), t.sel(quantile=0.9), color=color, alpha=0.15, lw=0)
    ax.axhline(float(_param(sizes_store, "epochs")), color="0.4", ls=":", lw=1, label="budget (epochs)")
    ax.axvline(2.0, color="k", ls="--", lw=1, label="Cover (1965): 2")
    ax.set(yscale="log", title="(f) perceptron rule: epochs to criterion (10-90%)", xlabel="load p / N (items per input)",
           ylabel="epochs until every item is right (trials that got there)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, outdir, "learning_capacity")


def _param(store: xr.Dataset, name: str):
    import json

    return json.loads(store.attrs["params"])[name] if "params" in store.attrs else None
