"""Predictive-coding weight rules and linear predictive coding as a strict 3Q-style rule.

In a hierarchical predictive coding network (Rao & Ballard 1999; Whittington & Bogacz 2017)
layer ``l`` holds values ``x`` and errors ``e = x - mu`` where the prediction
``mu = W f(x_{l-1})`` is the summed drive of the projection from the layer below. Learning is
local: ``dW = lr * e_post * fx_pre`` (``fx`` the presynaptic rate ``f(x)``), the negative
gradient of the energy ``E = sum_l |e_l|^2 / 2``. With shared weights (a minibatch) the
engine averages the update over trials.

``PC_ADAM`` is the same gradient fed to Adam (Kingma & Ba 2015), with its moment estimates
``m``, ``v`` held per synapse and the update count ``n_post`` per post unit.

``PC_LINEAR_3Q`` is linear predictive coding in three equations of additions and
multiplications: the error of a post unit against the drive it receives (its prediction),
the value relaxing between the prediction and a target, and the Hebbian-like weight update
of error times presynaptic value. At the value's equilibrium ``e = (y - W x) / 2``, so the
weights follow the least-mean-squares gradient to the least-squares solution.

References
----------
- R. P. N. Rao, D. H. Ballard (1999), Predictive coding in the visual cortex. Nat. Neurosci. 2:79-87.
- J. C. R. Whittington, R. Bogacz (2017), An approximation of the error backpropagation algorithm
  in a predictive coding network with local Hebbian synaptic plasticity. Neural Comput. 29:1229-1262.
- D. P. Kingma, J. Ba (2015), Adam: a method for stochastic optimization. ICLR.
"""

from plasticity.rule import Rule

__all__ = ["PC_SGD", "PC_ADAM", "PC_LINEAR_3Q"]

PC_SGD = Rule(
    ["w += lr * e_post * fx_pre"],
    params={"lr": 0.01},
    name="pc",
    description=(
        "Predictive-coding weight rule: postsynaptic prediction error times presynaptic rate f(x), "
        "the negative gradient of the energy sum |e|^2 / 2 (plain local SGD)."
    ),
    reference="Whittington & Bogacz (2017), Neural Comput. 29:1229-1262",
)

PC_ADAM = Rule(
    [
        "d = e_post * fx_pre",
        "m = beta1 * m + (1 - beta1) * d",
        "v = beta2 * v + (1 - beta2) * d * d",
        "n_post += 1",
        "w += lr * m / (1 - beta1 ** n_post) / (sqrt(v / (1 - beta2 ** n_post)) + eps)",
    ],
    params={"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    name="pc_adam",
    description=(
        "Predictive-coding gradient e_post * fx_pre with Adam: first and second moments m, v per "
        "synapse (d is the step's gradient, the minibatch mean with shared weights), bias-corrected "
        "with the update count n per post unit."
    ),
    reference="Whittington & Bogacz (2017); Adam: Kingma & Ba (2015), ICLR",
)

PC_LINEAR_3Q = Rule(
    [
        "e_post = v_post - mu_post",
        "v_post += gamma * (y_post - v_post - e_post)",
        "w += lr * e_post * x_pre",
    ],
    params={"lr": 0.01, "gamma": 0.5},
    init={"v_post": 0.0, "e_post": 0.0},
    form="strict",
    name="pc_linear_3q",
    description=(
        "Linear predictive coding as a strict 3Q-style rule: error e = v - mu of the value v against "
        "the prediction mu (the projection's summed drive, target='mu'), the value relaxing by gradient "
        "descent on |e|^2/2 + |y - v|^2/2 towards the target y, and the weight update e * x. "
        "Read from the post population: the target y; from the pre population: its value x."
    ),
    reference="Rao & Ballard (1999), Nat. Neurosci. 2:79-87; Whittington & Bogacz (2017)",
)
