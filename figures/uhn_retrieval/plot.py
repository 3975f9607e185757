"""Universal Hopfield networks on scikit-learn's digits: fraction of stored images retrieved
(the output is nearer the cued image than any other stored image) against the number stored,
one panel per similarity and cue, one line per separation function, error bars = standard error
over repeats; every function sees the same digits and cues (``seed_by``). Drawn from the stores
of noise.toml and mask.toml.

Reproduces the qualitative result of Millidge et al. (2022, ICML), Figs. 2 and 3 (capacity of
similarity and separation functions for noisy and half-masked cues): Manhattan and Euclidean
similarity above dot product, sharp separations (max, softmax, high powers) above identity, and
accuracy falling as more images are stored. Their data sets are MNIST, CIFAR-10 and Tiny
ImageNet; this figure uses the 8x8 digits bundled with scikit-learn (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.figures import save_figure  # noqa: E402

CUES = {"noise": "Gaussian noise", "mask": "half masked"}


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    cues = [cue for cue in CUES if cue in stores]
    similarities = list(stores[cues[0]]["similarity"].values)
    fig, axes = plt.subplots(len(cues), len(similarities), figsize=(4 * len(similarities), 3.3 * len(cues)), squeeze=False, sharey=True)
    for row, cue in enumerate(cues):
        store = stores[cue]
        accuracy = store["accuracy"]
        if "done" in store:
            accuracy = accuracy.where(store["done"])
        mean = accuracy.mean("repeat")
        count = accuracy.notnull().sum("repeat").clip(min=1)
        stderr = accuracy.std("repeat", ddof=1) / np.sqrt(count) if accuracy.sizes["repeat"] > 1 else mean * 0
        for col, similarity in enumerate(similarities):
            ax = axes[row, col]
            for separation in store["separation"].values:
                sel = dict(similarity=similarity, separation=separation)
                ax.errorbar(store["patterns"], mean.sel(sel), yerr=stderr.sel(sel).fillna(0), marker="o", ms=3, capsize=2, label=str(separation))
            ax.set(xscale="log", title=f"{similarity} similarity, {CUES[cue]} cue", xlabel="stored images (count)", ylim=(-0.03, 1.03))
            if col == 0:
                ax.set_ylabel("fraction retrieved\n(nearest stored image = cued)")
            ax.legend(fontsize=7, title="separation", title_fontsize=7)
    fig.tight_layout()
    return save_figure(fig, outdir, "uhn_retrieval")
