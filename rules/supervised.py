"""Supervised local rules: the delta (Widrow-Hoff) rule and the perceptron rule.

Both read a teaching signal ``target`` from the post population (set as an input).

References
----------
- B. Widrow, M. E. Hoff (1960), Adaptive switching circuits. IRE WESCON Convention Record 4:96-104.
- F. Rosenblatt (1958), The perceptron. Psychological Review 65(6):386-408.
- T. M. Cover (1965), Geometrical and statistical properties of systems of linear
  inequalities. IEEE Trans. Electron. Comput. 14:326-334 (capacity 2N).
"""

from plasticity.rule import Rule

__all__ = ["DELTA", "PERCEPTRON"]

DELTA = Rule(
    ["w += eta * (target_post - y_post) * x_pre"],
    params={"eta": 0.01},
    name="delta",
    description=(
        "Delta (least-mean-squares) rule: moves the output y towards the target in proportion to "
        "the error and the input; for a linear unit it is stochastic gradient descent on the squared error."
    ),
    reference="Widrow & Hoff (1960), IRE WESCON Convention Record 4:96-104",
)

PERCEPTRON = Rule(
    ["w += eta * where(target_post * I_post <= kappa, target_post * x_pre, 0)"],
    params={"eta": 1.0, "kappa": 0.0},
    name="perceptron",
    description=(
        "Perceptron rule for +-1 targets: when the summed input I has the wrong sign (or a margin "
        "below kappa), add target * x. Converges whenever the data are linearly separable; random "
        "patterns are separable up to 2N of them (Cover 1965)."
    ),
    reference="Rosenblatt (1958), Psychological Review 65:386-408; capacity: Cover (1965)",
)
