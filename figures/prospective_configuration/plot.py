"""Target alignment against depth for prospective configuration (pc) and backpropagation (bp).

Reproduces Song et al. (2024), Nat. Neurosci. 27:348-358, Fig. 3e (target alignment of deep linear
networks against their number of layers): the cosine between the change of the output after one
weight update and the direction to the target, ``target - output``, on the same input. Backprop moves
the weights along the gradient, which moves the output along ``J J^T (target - output)`` (``J`` the
output's Jacobian in the weights), further from the target's direction the deeper the network;
prospective configuration first infers the activity the target implies, then learns it.

(a) target alignment against the number of weight layers, mean over 16 updates x 3 seeds shared by
    the two modes (error bars: s.d. over the seeds' means; dots: single updates), with the values
    read off the authors' figure (open markers);
(b) the energy of the last pc update's inference against inference step, relative to its value after
    the last step, per depth: whether inference reached equilibrium before the update.

Values of the paper, read by eye off the authors' own plot of this experiment (mean over seeds,
width 64, Gaussian inputs and targets, T = 128, x-rate 0.1, lr 0.001; the image
``experiments/nature_target_alignment/base-depth-.png`` of github.com/YuhangSong/Prospective-Configuration,
the panel their scripts label fig3-e shows the same data as a scatter up to 25 layers). Read to about
+-0.02; not from the published PDF, whose panel may differ in detail:

    layers  1     2     4     6     8     10    12    14    15
    pc      1.00  0.99  0.99  0.92  0.95  0.93  0.91  0.95  0.89
    bp      1.00  0.92  0.82  0.72  0.68  0.57  0.55  0.54  0.39

Here the inputs are digits and the outputs 10 one-hot units (not 64 Gaussian ones), with biases, so
the bp curve falls more slowly than the paper's; the claim reproduced is the ordering and its growth
with depth: pc stays near 1 while bp falls. Measured (mean over 3 seeds x 16 updates; s.d. over the
seeds' means at most 0.002 for pc, 0.016 for bp):

    layers  1      2      4      6      8      10     12
    pc      1.000  1.000  1.000  0.999  0.998  0.996  0.997
    bp      1.000  0.982  0.956  0.938  0.900  0.884  0.897

Inference is near, not at, equilibrium in the deepest networks: over the last 10% of the 256 steps
the energy still falls by 0.03% (4 layers), 0.7% (6), 2.3% (8), 3.4% (10), 3.7% (12); at 12 layers,
1,024 steps change pc's alignment by under 0.002 (checked on 3 updates, seed 0).

Drawn from the store of experiment.toml.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from plasticity.figures import save_figure  # noqa: E402

#: Song et al. (2024), read off the authors' plot (see the module docstring): layers -> (pc, bp).
PAPER_LAYERS = [1, 2, 4, 6, 8, 10, 12, 14, 15]
PAPER = {
    "pc": [1.00, 0.99, 0.99, 0.92, 0.95, 0.93, 0.91, 0.95, 0.89],
    "bp": [1.00, 0.92, 0.82, 0.72, 0.68, 0.57, 0.55, 0.54, 0.39],
}
LABELS = {"pc": "prospective configuration (pc)", "bp": "backpropagation (bp)"}
STYLES = {"pc": ("o", "-", "C0"), "bp": ("x", "--", "C1")}


def plot(stores: dict[str, xr.Dataset], outdir: Path) -> list[Path]:
    store = stores["experiment"]
    alignment = store["target_alignment"]
    if "done" in store:
        alignment = alignment.where(store["done"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 4.0))
    depths = alignment["depth"].values
    for mode in [str(m) for m in alignment["mode"].values]:
        marker, dashes, color = STYLES.get(mode, ("o", "-", None))
        values = alignment.sel(mode=mode)
        per_seed = values.mean(["epoch", "step"])
        left.errorbar(depths, per_seed.mean("repeat"), yerr=per_seed.std("repeat"), marker=marker, linestyle=dashes,
                      color=color, capsize=2, label=f"{LABELS.get(mode, mode)}: digits, 10 outputs")
        singles = values.stack(update=[d for d in values.dims if d != "depth"])
        jitter = 0.12 if mode == "pc" else -0.12
        for depth in depths:
            points = singles.sel(depth=depth).values
            left.plot(np.full(points.shape, depth + jitter), points, ".", color=color, alpha=0.15, ms=3)
        if mode in PAPER:
            left.plot(PAPER_LAYERS, PAPER[mode], marker=marker, linestyle=":", color=color, mfc="none", alpha=0.6,
                      label=f"{mode}: Song et al. 2024, Gaussian data, 64 outputs (read off)")
    inference = store.sizes.get("inference_step", 1) - 1  # T
    left.set(xlabel="number of weight layers", ylabel="target alignment (cosine)",
             title=f"(a) linear width-64 networks, pc T = {inference}, {alignment.sizes['repeat']} shared seeds")
    left.legend(fontsize=7, loc="lower left")
    if "energy_trajectory" in store:
        energy = store["energy_trajectory"].sel(mode="pc")
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(depths)))
        for color, depth in zip(colors, depths):
            path = energy.sel(depth=depth).mean("repeat")
            right.plot(path["inference_step"], path / path.isel(inference_step=-1), color=color, label=f"{int(depth)} layers")
        right.set(xlabel="inference step", ylabel="energy / energy after the last step", yscale="log",
                  title="(b) pc inference before its last update")
        right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, outdir, "prospective_configuration")
