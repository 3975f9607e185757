"""Oja's rule written as an equation, run on 8 independent trials, recorded as xarray.

Run: python examples/oja_script.py
"""

import numpy as np

import plasticity as pl

n = 10
rng = np.random.default_rng(0)
scales = 0.8 ** np.arange(n)  # input standard deviations: PC1 is the first axis

inputs = pl.Population(n, init={"x": 0.0}, name="inputs")
output = pl.Population(1, ["y = I"], name="output")
oja = pl.Rule(["w += eta * y_post * (x_pre - y_post * w)"], params={"eta": 0.01}, name="my_oja")
network = pl.Network([inputs, output], [pl.Projection(inputs, output, oja, name="w")])

simulation = pl.Simulation(network, trials=8, seed=1)  # numba backend by default
run = simulation.run(
    5000,
    inputs={"inputs.x": lambda step, rng: rng.standard_normal((8, n)) * scales},
    record={"w.w": 100},
)
final = run["w.w"].isel(time=-1, w_post=0)
alignment = np.abs(final.isel(w_pre=0)) / np.sqrt((final**2).sum("w_pre"))
print(run)
print("alignment with PC1 per trial:", alignment.values.round(3))
