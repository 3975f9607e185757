"""Anti-Hebbian decorrelation of lateral connections (Foldiak).

Reference
---------
- P. Foldiak (1990), Forming sparse representations by local anti-Hebbian learning.
  Biol. Cybern. 64:165-170.
"""

from plasticity.rule import Rule

__all__ = ["FOLDIAK"]

FOLDIAK = Rule(
    ["w += -eta * (y_post * y_pre - p * p)"],
    params={"eta": 0.01, "p": 0.0},
    name="foldiak",
    description=(
        "Anti-Hebbian rule for lateral (recurrent, inhibitory) weights: co-active units inhibit "
        "each other more, which decorrelates their outputs. p is the target activity; p = 0 is "
        "pure anti-Hebbian decorrelation. Use on a projection from a population to itself with "
        "a mask that removes self-connections."
    ),
    reference="Foldiak (1990), Biol. Cybern. 64:165-170",
)
