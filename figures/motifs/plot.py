"""The motif battery: the library's rules on gating, XOR, 3-bit parity, key-value recall and
sequence recall, each against chance. Drawn from the stores of readout_*.toml, kv_*.toml and
sequence_*.toml (one store per rule or memory; equal point indices give every rule the same
patterns, orders and random layers).

Held against known values:

* a linear readout cannot compute XOR or parity (Minsky & Papert 1969, Perceptrons, ch. 2):
  its least-squares fit is zero, so a delta-rule readout scores 0.5; for gating the fit is
  (a + b)/2, right on the half of the items where a = b and a coin toss elsewhere: 0.75. A
  fixed random layer of 64 tanh units (Rosenblatt's association layer) makes all three
  separable: supervised rules (delta, perceptron) reach 1.0.
* Hebbian outer-product key-value memory (Hertz, Krogh & Palmer 1991, Introduction to the
  Theory of Neural Computation, sec. 2.2, the crosstalk term): with P random +-1 pairs in N
  units a value bit's field is N plus crosstalk of variance N (P - 1), so the fraction of bits
  right is Phi(sqrt(N / (P - 1))): 0.984 at P = 8, 0.841 at P = 32, 0.762 at P = 64 for N = 32
  (drawn as the dashed curve; the measured values are 0.981, 0.841, 0.763).
* the delta rule stores P <= N pairs exactly (linearly independent keys; Widrow & Hoff 1960);
  the modern Hopfield network (Ramsauer et al. 2020, Theorem 3) stores exponentially many, all
  64 here.
* a sequence stored by the asymmetric Hebbian rule (Sompolinsky & Kanter 1986) has the same
  crosstalk per transition, Phi(sqrt(N / (L - 2))) of the bits right after one step from a
  clean pattern (dashed, an upper bound: errors compound along the replay).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.figures import save_figure  # noqa: E402

READOUT_RULES = ("delta", "perceptron", "hebb", "oja", "covariance", "bcm")
MOTIFS = ("gating", "xor", "parity")
MEMORIES = {"hebb": "Hebbian outer product", "delta": "delta rule", "hopfield": "classical Hopfield (Hebbian)",
            "modern": "modern Hopfield", "pc": "predictive coding"}
SEQUENCES = {"hebb": "asymmetric Hebb", "covariance": "asymmetric covariance (3Q)"}


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _accuracy(store: xr.Dataset) -> xr.DataArray:
    accuracy = store["accuracy"]
    if "done" in store:
        accuracy = accuracy.where(store["done"])
    return accuracy.squeeze("repeat", drop=True)


def _mean_and_error(accuracy: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    count = accuracy.count("trial")
    return accuracy.mean("trial"), accuracy.std("trial", ddof=1) / np.sqrt(count)


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9), gridspec_kw={"width_ratios": [1.3, 1.3, 1.2, 1.2]})
    rules = [rule for rule in READOUT_RULES if f"readout_{rule}" in stores]
    width = 0.8 / max(1, len(rules))
    colors = plt.cm.tab10(np.arange(len(rules)))
    for ax, hidden, title in ((axes[0], 0, "linear readout"), (axes[1], 64, "64 random tanh units + readout")):
        for k, (rule, color) in enumerate(zip(rules, colors)):
            mean, error = _mean_and_error(_accuracy(stores[f"readout_{rule}"]).sel(hidden=hidden))
            x = np.arange(len(MOTIFS)) + (k - (len(rules) - 1) / 2) * width
            ax.bar(x, mean.sel(task=list(MOTIFS)), width, yerr=error.sel(task=list(MOTIFS)), color=color, capsize=2, label=rule)
        ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
        if hidden == 0:
            ax.plot([-0.4, 0.4], [0.75, 0.75], color="k", lw=1.2, ls="--", label="best linear fit (0.75)")
        ax.set(xticks=np.arange(len(MOTIFS)), xticklabels=["gating", "XOR", "3-bit parity"], ylim=(0, 1.05),
               ylabel="fraction of items right", title=title)
    axes[0].legend(fontsize=7, ncol=2, loc="lower left")

    ax = axes[2]
    for memory, label in MEMORIES.items():
        if f"kv_{memory}" not in stores:
            continue
        accuracy = _accuracy(stores[f"kv_{memory}"])
        mean, error = _mean_and_error(accuracy)
        ax.errorbar(accuracy["pairs"], mean, yerr=error, marker="o", ms=3, capsize=2, label=label)
    pairs = np.linspace(2, 64, 200)
    ax.plot(pairs, _phi(np.sqrt(32 / (pairs - 1))), color="k", lw=0.9, ls="--", label="Hebbian crosstalk theory")
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
    ax.set(xlabel="pairs stored (N = 32 units per key and value)", ylabel="fraction of value bits right",
           ylim=(0.45, 1.02), title="key-value recall")
    ax.legend(fontsize=7)

    ax = axes[3]
    for rule, label in SEQUENCES.items():
        if f"sequence_{rule}" not in stores:
            continue
        accuracy = _accuracy(stores[f"sequence_{rule}"])
        mean, error = _mean_and_error(accuracy)
        ax.errorbar(accuracy["length"], mean, yerr=error, marker="o", ms=3, capsize=2, label=label)
    length = np.linspace(3, 48, 200)
    ax.plot(length, _phi(np.sqrt(64 / (length - 2))), color="k", lw=0.9, ls="--", label="one transition, crosstalk theory")
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
    ax.set(xlabel="sequence length (patterns, N = 64 units)", ylabel="fraction of replayed bits right",
           ylim=(0.45, 1.02), title="sequence replay from the first pattern")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, outdir, "motifs")
