"""The memory continuum: Chandra, Sharma, Chaudhuri & Fiete (2025), Nature 638:739, Fig. 3 (mutual
information per input bit against the number of stored patterns, Vector-HaSH against Hopfield
networks with the same number of synapses). 19 pattern counts from 1 to 3600, 10 trials each.

What the memories share: the root seed (20324) and so, trial by trial, the stored patterns: trial t
of every experiment stores the trial's common patterns (``networks._assoc.common_patterns``),
Vector-HaSH all 3600 units of the first P, the Hopfield networks (``common_patterns = true``) the
first 1709 units of the same P patterns; a count's patterns are the first P of the largest count's,
as in the authors' code. Not shared: Vector-HaSH is cued with every stored pattern, the Hopfield
networks (their own protocols) with the first; each draws its own grid to place weights or
flipped bits.

Vector-HaSH (lambdas 3, 4, 5; 400 place cells; 3600 sensory units: 2 920 000 synapses) recalls
the patterns up to P = 400 (MI 0.995-0.998: the authors' Hebbian scaffold leaves about one of its
3600 states unstable per draw of W_pg) and then degrades smoothly, as the least-squares read-out
predicts (dashed; MI 0.84, 0.60, 0.37, 0.20, 0.14, 0.056 at P = 500, 600, 800, 1200, 1600, 3600);
a Hebbian Hopfield network of N = 1709 units (N^2 = 2 920 681 couplings) collapses past about
0.14 N (MI 0.97 at P = 200, 0.92 at 250, 0.08 at 300, 0.03-0.07 beyond); a pseudo-inverse one
(cues with 5 % of bits flipped) recalls everything up to 800 = 0.47 N, 0.75 at 1000 and nothing
at 1200 and 1600 (drawn below P = N only: past it its couplings are zero and it returns the cue);
a modern Hopfield network recalls all 3600, but keeps each pattern as a row of its weights (P N
synapses, more than Vector-HaSH's past P = 1709, marked). The shapes are those of the paper's
figure: a plateau then a smooth decline for Vector-HaSH, cliffs for the Hopfield networks. Every
memory is cued with its stored patterns, clean unless stated (the authors' continuum); the
information per bit is 1 - H2((1 + m) / 2) of the mean overlap m, as the authors compute it. Drawn
from the stores of vector_hash.toml, hopfield_hebbian.toml, hopfield_pseudoinverse.toml and
modern.toml (about 41 minutes of point compute in all, 24 minutes of wall time, on 2 cores shared
at load 9-13: costs.json)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.figures import save_figure  # noqa: E402
from plasticity.networks.vector_hash import mutual_information_per_bit  # noqa: E402

HOPFIELD_N = 1709  # sqrt(2 Ns Np + 2 Np Ng) = sqrt(2 920 000)
N_PLACE = 400
CURVES = (
    ("vector_hash", "Vector-HaSH (pseudo-inverse, Np = 400)", "C0"),
    ("hopfield_hebbian", "Hopfield, Hebbian (N = 1709)", "C3"),
    ("hopfield_pseudoinverse", "Hopfield, pseudo-inverse (N = 1709, 5 % flipped)", "C1"),
    ("modern", "modern Hopfield (N = 1709, P x N weights)", "C2"),
)


def _overlap(store: xr.Dataset) -> xr.DataArray:
    """Mean overlap per pattern count over repeats and trials (done points only)."""
    overlap = store["overlap"]
    if "done" in store:
        overlap = overlap.where(store["done"])
    return overlap


def _theory(patterns: np.ndarray) -> np.ndarray:
    """Overlap of the least-squares read-out past Np: erf(sqrt(Np / (2 (P - Np)))), 1 up to Np."""
    return np.array([1.0 if p <= N_PLACE else math.erf(math.sqrt(N_PLACE / (2.0 * (p - N_PLACE)))) for p in patterns])


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    fig, (info_ax, overlap_ax) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for stem, label, color in CURVES:
        if stem not in stores:
            continue
        overlap = _overlap(stores[stem])
        if stem == "hopfield_pseudoinverse":  # past P = N its couplings are zero: it returns the cue unchanged
            overlap = overlap.sel(patterns=overlap["patterns"] < HOPFIELD_N)
        dims = [d for d in overlap.dims if d != "patterns"]
        count = overlap.count(dims)
        mean = overlap.mean(dims)
        sem = overlap.std(dims) / np.sqrt(np.maximum(count - 1, 1))
        patterns = mean["patterns"].values
        info = mutual_information_per_bit(mean.values)
        low = mutual_information_per_bit(np.clip(mean.values - sem.values, 0, 1))
        high = mutual_information_per_bit(np.clip(mean.values + sem.values, 0, 1))
        info_ax.plot(patterns, info, marker="o", ms=3, color=color, label=label)
        info_ax.fill_between(patterns, low, high, color=color, alpha=0.25, lw=0)
        overlap_ax.errorbar(patterns, mean.values, yerr=sem.values, marker="o", ms=3, capsize=2, color=color, label=label)
    if "vector_hash" in stores:
        patterns = np.unique(np.concatenate([np.linspace(1, 3600, 400), [N_PLACE]]))
        info_ax.plot(patterns, mutual_information_per_bit(_theory(patterns)), "k--", lw=0.9,
                     label="least-squares read-out, erf(sqrt(Np / 2(P - Np)))")
        overlap_ax.plot(patterns, _theory(patterns), "k--", lw=0.9)
    for ax in (info_ax, overlap_ax):
        ax.axvline(0.14 * HOPFIELD_N, color="0.5", lw=0.8, ls=":")
        ax.axvline(HOPFIELD_N, color="C2", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("stored patterns P")
    info_ax.text(0.14 * HOPFIELD_N * 1.05, 0.5, "0.14 N", fontsize=7, color="0.4")
    info_ax.text(HOPFIELD_N * 1.05, 0.5, "P N > Vector-HaSH\nsynapses", fontsize=7, color="C2")
    info_ax.set(ylabel="mutual information per input bit (bits)", ylim=(-0.02, 1.05),
                title="memory continuum at 2.92 M synapses")
    overlap_ax.set(ylabel="overlap of recalled with stored pattern", ylim=(-0.05, 1.05), title="overlap (mean ± s.e.m.)")
    info_ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return save_figure(fig, outdir, "vector_hash_continuum")
