"""Three-factor rules: Hebbian eligibility traces gated by a global neuromodulator.

Reference
---------
- N. Fremaux, W. Gerstner (2016), Neuromodulated spike-timing-dependent plasticity, and
  theory of three-factor learning rules. Front. Neural Circuits 9:85.
"""

from plasticity.rule import Rule

__all__ = ["THREE_FACTOR"]

THREE_FACTOR = Rule(
    [
        "e += alpha * (y_post * x_pre - e)",
        "w += eta * (m - baseline) * e",
    ],
    params={"eta": 0.01, "alpha": 0.1, "baseline": 0.0},
    modulators=("m",),
    name="three_factor",
    description=(
        "Reward-modulated Hebbian learning: each synapse keeps an eligibility trace e of recent "
        "pre/post coincidences, and a global modulator m (a reward, set per trial as an input "
        "'projection.m') turns the trace into a weight change."
    ),
    reference="Fremaux & Gerstner (2016), Front. Neural Circuits 9:85",
)
