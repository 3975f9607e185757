"""Training-free multi-query associative recall by sequence memories written as local rules.

Left panels, one per model dimension d: fraction of queries answered with their value against
the number of key-value pairs in context, one line per memory (linear attention, decayed and
gated linear attention, DeltaNet, gated DeltaNet, softmax attention); every memory sees the same
sequences and embeddings (``seed_by``); error bars = standard error over the sequences. The
dashed line marks pairs = d, about where a d x d fast-weight state stops holding random keys
apart (d orthogonal keys fit exactly). Right panel: the accuracy / state-size trade-off at 64
pairs: numbers the memory holds (d^2 for a fast-weight state, 2 x pairs x d for softmax's keys
and values) against accuracy. Last panel (from train.toml, when its store is saved): the same
task learned by a one-memory-layer model (``attention.train``: embedding, token shift, memory
layer, MLP, read-out; d = 16, so a 16 x 16 fast-weight state; vocabulary 512; 800 AdamW steps
with warm-up and cosine decay), test accuracy against pairs, mean over two seeds with the range
of the seeds as error bars; every memory trains on the same sequences from the same initial
weights.

Reproduces the qualitative picture of Arora et al. (2023, zoology, Fig. 2) and Arora et al.
(2024, Based, Fig. 2): attention solves MQAR at every size, fixed-state memories degrade as the
pairs outgrow the state; and, trained, DeltaNet stays above linear attention at the same state
size (Yang, Wang, Zhang, Shen and Kim 2024, NeurIPS: in their MQAR experiment on zoology's
setup DeltaNet is above the other fixed-state memories). Drawn from the stores of recall.toml and train.toml.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.figures import save_figure  # noqa: E402

LABELS = {"linear": "linear attention", "decayed": "decayed linear", "gated": "gated linear", "delta": "DeltaNet",
          "gated_delta": "gated DeltaNet", "softmax": "softmax attention"}
TRADE_OFF_PAIRS = 64  # the trade-off panel is drawn when the store holds this many pairs


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    store = stores["recall"]
    accuracy = store["accuracy"]
    if "done" in store:
        accuracy = accuracy.where(store["done"])
    samples = ["repeat", "trial"]
    mean = accuracy.mean(samples)
    stderr = accuracy.std(samples, ddof=1) / np.sqrt(accuracy.notnull().sum(samples).clip(min=1))
    dims = list(store["d_model"].values)
    trained = stores.get("train")
    panels = len(dims) + 1 + (trained is not None)
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.6), squeeze=False)
    colors = dict(zip(LABELS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for col, d in enumerate(dims):
        ax = axes[0, col]
        for memory in store["memory"].values:
            sel = dict(memory=memory, d_model=d)
            ax.errorbar(store["pairs"], mean.sel(sel), yerr=stderr.sel(sel).fillna(0), marker="o", ms=3, capsize=2,
                        label=LABELS.get(str(memory), str(memory)), color=colors.get(str(memory)))
        ax.axvline(d, color="grey", ls="--", lw=1)
        ax.text(d, 0.02, " pairs = d", color="grey", fontsize=7)
        ax.set(xscale="log", ylim=(-0.03, 1.03), title=f"d = {d} (state {d}x{d})", xlabel="key-value pairs in context (count)")
        if col == 0:
            ax.set_ylabel("fraction of queries recalled")
            ax.legend(fontsize=7)
    ax = axes[0, len(dims)]
    if TRADE_OFF_PAIRS in store["pairs"].values:
        for memory in store["memory"].values:
            sel = dict(memory=memory, pairs=TRADE_OFF_PAIRS)
            state = store["state"].sel(sel).max(["repeat", "trial"])
            ax.errorbar(state, mean.sel(sel), yerr=stderr.sel(sel).fillna(0), marker="o", ms=4, capsize=2,
                        label=LABELS.get(str(memory), str(memory)), color=colors.get(str(memory)))
        ax.set(xscale="log", ylim=(-0.03, 1.03), title=f"{TRADE_OFF_PAIRS} pairs: accuracy against state size",
               xlabel="numbers held by the memory (count)", ylabel="fraction of queries recalled")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if trained is not None:
        ax = axes[0, -1]
        learned = trained["accuracy"].where(trained["done"]) if "done" in trained else trained["accuracy"]
        d = int(round(float(trained["state"].min()) ** 0.5))  # the fast-weight state holds d^2 numbers, softmax more
        for memory in trained["memory"].values:
            curve = learned.sel(memory=memory)
            middle = curve.mean("repeat")
            spread = np.stack([middle - curve.min("repeat"), curve.max("repeat") - middle])
            ax.errorbar(trained["pairs"], middle, yerr=spread, marker="o", ms=3, capsize=2,
                        label=LABELS.get(str(memory), str(memory)), color=colors.get(str(memory)))
        ax.axvline(d, color="grey", ls="--", lw=1)
        ax.set(xscale="log", ylim=(-0.03, 1.03), title=f"trained {trained['step'].size} steps, d = {d}",
               xlabel="key-value pairs in context (count)", ylabel="fraction of test queries recalled")
        ax.set_xticks(trained["pairs"].values, [str(p) for p in trained["pairs"].values])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    return save_figure(fig, outdir, "attention_memory")
