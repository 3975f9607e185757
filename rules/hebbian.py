"""Unsupervised Hebbian rules: Hebb with decay, the covariance rule, BCM.

References
----------
- D. O. Hebb (1949), The Organization of Behavior. Wiley.
- T. J. Sejnowski (1977), Storing covariance with nonlinearly interacting neurons.
  J. Math. Biol. 4:303-321.
- E. L. Bienenstock, L. N. Cooper, P. W. Munro (1982), Theory for the development of
  neuron selectivity. J. Neurosci. 2(1):32-48.
- N. Intrator, L. N. Cooper (1992), Objective function formulation of the BCM theory of
  visual cortical plasticity. Neural Networks 5:3-17 (the sliding threshold as a running
  average of y^2).
"""

from plasticity.rule import Rule

__all__ = ["HEBB", "COVARIANCE", "BCM", "BCM_3Q"]

HEBB = Rule(
    ["w += eta * y_post * x_pre - decay * w"],
    params={"eta": 0.01, "decay": 0.001},
    name="hebb",
    description="Plain Hebbian learning with passive weight decay; decay > 0 keeps weights bounded for bounded activity.",
    reference="Hebb (1949), The Organization of Behavior; decay as in Dayan & Abbott (2001), Theoretical Neuroscience, ch. 8",
)

COVARIANCE = Rule(
    [
        "xbar_pre += alpha * (x_pre - xbar_pre)",
        "ybar_post += alpha * (y_post - ybar_post)",
        "w += eta * (y_post - ybar_post) * (x_pre - xbar_pre)",
    ],
    params={"eta": 0.01, "alpha": 0.01},
    form="strict",
    name="covariance",
    description=(
        "Covariance rule with running means as traces: strengthens synapses whose pre and post "
        "activities co-vary, weakens anti-correlated ones. A strict 3Q-style rule: two trace "
        "equations (one per side) and one weight equation, additions and multiplications only."
    ),
    reference="Sejnowski (1977), J. Math. Biol. 4:303-321",
)

BCM = Rule(
    [
        "w += eta * x_pre * y_post * (y_post - theta_post)",
        "theta_post += (y_post * y_post - theta_post) * dt / tau",
    ],
    params={"eta": 0.001, "tau": 100.0},
    init={"theta_post": 1.0},
    name="bcm",
    description=(
        "BCM rule: potentiation when the post response exceeds a sliding threshold theta, "
        "depression below it; theta tracks the running mean of y^2 with time constant tau, "
        "which stabilises learning and yields selectivity."
    ),
    reference="Bienenstock, Cooper & Munro (1982), J. Neurosci. 2:32-48; threshold as in Intrator & Cooper (1992)",
)

BCM_3Q = Rule(
    [
        "theta_post += alpha * (y_post * y_post - theta_post)",
        "phi_post = y_post * (y_post - theta_post)",
        "w += eta * phi_post * x_pre",
    ],
    params={"eta": 0.001, "alpha": 0.01},
    init={"theta_post": 1.0},
    form="strict",
    name="bcm3q",
    description=(
        "BCM written as a strict 3Q-style rule: the sliding threshold, the post-synaptic "
        "modification function phi(y) = y (y - theta), and the weight update x * phi. "
        "Two of its equations are per post unit, so the per-synapse work is one multiply and one add."
    ),
    reference="Bienenstock, Cooper & Munro (1982), J. Neurosci. 2:32-48",
)
