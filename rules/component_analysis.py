"""Hebbian rules that extract principal components: Oja and Sanger (generalised Hebbian algorithm).

References
----------
- E. Oja (1982), A simplified neuron model as a principal component analyzer.
  J. Math. Biol. 15:267-273.
- T. D. Sanger (1989), Optimal unsupervised learning in a single-layer linear feedforward
  neural network. Neural Networks 2:459-473.
"""

from plasticity.rule import Rule

__all__ = ["OJA", "SANGER"]

OJA = Rule(
    ["w += eta * y_post * (x_pre - y_post * w)"],
    params={"eta": 0.005},
    name="oja",
    description=(
        "Oja's rule: Hebbian growth with a decay proportional to y^2 that normalises the weight "
        "vector; a linear unit y = w.x converges to the first principal component of its input."
    ),
    reference="Oja (1982), J. Math. Biol. 15:267-273",
)

SANGER = Rule(
    ["w += eta * y_post * (x_pre - cumsum_post(y_post * w))"],
    params={"eta": 0.005},
    name="sanger",
    description=(
        "Sanger's generalised Hebbian algorithm: output i subtracts the reconstruction by outputs "
        "0..i, so k linear outputs converge to the top k principal components in order."
    ),
    reference="Sanger (1989), Neural Networks 2:459-473",
)
