"""Computational motifs: small tasks with known answers that any rule can be scored on.

The ``motifs`` protocol runs one motif (``task``) with a rule (a library name, a table of
equations or a :class:`~plasticity.rule.Rule`) and reports the accuracy of every trial beside
the accuracy of chance. Every network is built from engine objects, so a user's rule (or a
candidate of ``plasticity search``) takes the place of a library rule.

Readout motifs: inputs are +-1, every combination is an item, and a plastic readout learns the
+-1 target from the inputs directly (``hidden = 0``) or from a fixed random layer of ``hidden``
units ``h = f(W_in [x, 1])`` (its weights normal with standard deviation ``gain / sqrt(d + 1)``;
it does not learn). Chance is 0.5 (the targets are balanced).

* ``gating``: inputs ``a``, ``b`` and a context ``c``; the output copies ``a`` when ``c = 1`` and
  ``b`` when ``c = -1``: ``(a + b)/2 + c (a - b)/2`` needs the products ``c a`` and ``c b``, a
  multiplicative interaction; a linear readout gets the items with ``a = b`` right and guesses
  the rest (0.75).
* ``xor``: ``-a b`` of two inputs; ``parity``: ``a b c`` of three (odd parity). Neither is
  linearly separable (Minsky & Papert 1969): a linear readout stays at chance, a hidden layer of
  random nonlinear units (Rosenblatt's perceptron with a fixed association layer, 1958) solves
  them.

The readout is one output unit with the summed input ``I`` and the target ``target``; a rule
that reads ``target_post`` is supervised and sees its free output ``y = I``, with the error
``e = target - I``; any other rule learns by teacher forcing, its output clamped to the target
(``y = target``), as Hebbian association does. An item is right when ``I`` has the target's
sign (a field of exactly zero counts as half right: no answer is a coin toss).

Memory motifs (``n`` units, +-1 patterns; accuracy is the fraction of bits recalled, chance 0.5;
``recalled`` is the fraction of items with an overlap of at least 0.9 with the right pattern):

* ``key_value``: ``pairs`` pairs of a key and a value are stored, each key is presented and
  its value read, against the number of pairs (sweep ``pairs``). ``memory`` chooses the store,
  all on the same keys and values:

  - ``"rule"``: a hetero-associative projection from the key units to the value units learning
    with ``rule`` for ``epochs`` passes: Hebbian outer-product memory (``hebb``; Kohonen 1972,
    Willshaw et al. 1969), the delta rule (``delta``; Widrow & Hoff 1960), any rule;
  - ``"hopfield"``: a classical Hopfield network (:mod:`plasticity.networks.hopfield`) of
    ``2 n`` units storing each key and value side by side with the storage ``rule`` (default
    ``hebbian``), recalled asynchronously from the key with a random +-1 value half;
  - ``"modern"``: a modern Hopfield network (Ramsauer et al. 2020;
    :mod:`plasticity.networks.modern`) storing the same concatenations, one update at inverse
    temperature ``beta`` from the same cue: softmax attention of the key over the stored keys;
  - ``"pc"``: a predictive coding network (:mod:`plasticity.networks.predictive_coding`,
    linear, ``[n, n]``, Whittington & Bogacz 2017) trained on the pairs (``epochs`` batches of
    every pair, ``T`` inference steps each), the value read as its feedforward prediction.

  ``capacity`` is the number of pairs recalled per unit, ``recalled * pairs / n``.
* ``sequence``: a sequence of ``length`` patterns is stored in a recurrent network with an
  asymmetric Hebbian rule (Sompolinsky & Kanter 1986; Kleinfeld 1986): the rule sees the
  pattern before as the presynaptic ``x_pre`` and the next as the postsynaptic ``y_post``, so
  ``hebb`` writes ``W = sum xi_{mu+1} xi_mu^T``; recall starts from the first pattern and runs
  ``y = sign(W y)``; step ``k`` should give pattern ``k``.

References
----------
- M. Minsky, S. Papert (1969), Perceptrons. MIT Press.
- F. Rosenblatt (1958), Psychological Review 65:386-408.
- D. J. Willshaw, O. P. Buneman, H. C. Longuet-Higgins (1969), Nature 222:960-962.
- T. Kohonen (1972), IEEE Trans. Comput. C-21:353-359.
- H. Sompolinsky, I. Kanter (1986), Phys. Rev. Lett. 57:2861-2864.
- D. Kleinfeld (1986), PNAS 83:9469-9473.
- H. Ramsauer et al. (2020), Hopfield networks is all you need. arXiv:2008.02217.
- J. C. R. Whittington, R. Bogacz (2017), Neural Comput. 29:1229-1262.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError, EquationError
from plasticity.init import normal
from plasticity.network import Network
from plasticity.params import Choice, Int, Maybe, Real, RuleSpec
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.protocols import protocol
from plasticity.rule import Rule
from plasticity.simulation import Simulation

__all__ = ["MOTIFS", "MEMORIES", "ACTIVATIONS", "readout_items", "readout_network", "motifs"]

MOTIFS = ("gating", "xor", "parity", "key_value", "sequence")
MEMORIES = ("rule", "hopfield", "modern", "pc")
#: The fixed random layer's unit function, written over its summed input.
ACTIVATIONS = {"tanh": "tanh(I)", "relu": "relu(I)", "sign": "sign(I)"}
#: Overlap with the right pattern from which an item counts as recalled.
RECALLED = 0.9
#: What each network's units offer a rule, for error messages.
_READOUT_OFFERS = "x_pre (the inputs or hidden rates), target_post, y_post, e_post and I_post"
_SEQUENCE_OFFERS = "x_pre (the pattern before), y_post (the next pattern), x and y on either side and I"


def readout_items(task: str) -> tuple[np.ndarray, np.ndarray]:
    """Every +-1 input combination of a readout motif ``(items, inputs)`` and its target ``(items,)``."""
    inputs = {"gating": 3, "xor": 2, "parity": 3}[task]
    items = np.array(list(itertools.product((-1.0, 1.0), repeat=inputs)))
    if task == "gating":
        a, b, c = items.T
        return items, np.where(c > 0, a, b)
    if task == "xor":
        return items, -items[:, 0] * items[:, 1]
    return items, items.prod(axis=1)


def _supervised(rule: Rule) -> bool:
    return "target" in rule.unit_reads("post")


def _check_rule(rule: Rule, task: str) -> None:
    if rule.modulators:
        raise ConfigError(
            f"rule {rule.name or '(unnamed)'!r} reads the modulator(s) {', '.join(rule.modulators)}, which motif "
            f"{task!r} does not set; valid rules read only unit variables and parameters"
        )
    if not any(eq.level == "synapse" and eq.var == "w" for eq in rule.parsed):
        raise ConfigError(f"rule {rule.name or '(unnamed)'!r} never writes the weight w; a motif's rule needs 'w += ...'")


def _projection(pre: Population, post: Population, rule: Rule, offers: str, **kwargs: Any) -> Projection:
    try:
        return Projection(pre, post, rule, **kwargs)
    except EquationError as error:
        raise EquationError(f"{error.reason}; this motif offers {offers}", error.equation, error.column) from None


def readout_network(rule: Rule, inputs: int, hidden: int, activation: str, gain: float) -> Network:
    """Inputs ``x`` (``inputs`` units and a constant 1), an optional fixed random layer of ``hidden``
    units and one output unit trained by ``rule`` (see the module docstring).

    The random layer's rates ``h = f(I)`` drive the output one step later; its ``x`` keeps the rates
    of the step before (``x = h`` runs first), which is what the output's drive read, so the rule
    pairs the rates and the output of the same item."""
    source = Population(inputs + 1, init={"x": 0.0}, name="input")
    populations, projections = [source], []
    pre = source
    if hidden:
        layer = Population(hidden, ["x = h", f"h = {ACTIVATIONS[activation]}"], init={"h": 0.0, "x": 0.0}, name="hidden")
        populations.append(layer)
        projections.append(Projection(source, layer, None, source="x", init={"w": normal(gain / np.sqrt(inputs + 1))}, name="random"))
        pre = layer
    equations = ["y = I" if _supervised(rule) else "y = target", "e = target - I"]
    output = Population(1, equations, init={"target": 0.0}, name="output")
    populations.append(output)
    projections.append(_projection(pre, output, rule, _READOUT_OFFERS, source="h" if hidden else "x", init={"w": 0.0}, name="readout"))
    return Network(populations, projections)


def _children(seed: int | np.random.SeedSequence) -> list[np.random.SeedSequence]:
    """Two independent seeds: the data's and the simulation's."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.spawn(2)


def _with_bias(items: np.ndarray) -> np.ndarray:
    return np.concatenate([items, np.ones(items.shape[:-1] + (1,))], axis=-1)


def _readout(task, rule, hidden, activation, gain, epochs, trials, runtime, seed) -> dict[str, np.ndarray]:
    items, targets = readout_items(task)
    count = len(items)
    network = readout_network(rule, items.shape[1], hidden, activation, gain)
    order_seed, simulation_seed = _children(seed)
    rng = np.random.default_rng(order_seed)
    order = np.stack([np.concatenate([rng.permutation(count) for _ in range(epochs)]) for _ in range(trials)], axis=1)
    shown, wanted = _with_bias(items)[order], targets[order][..., None]  # (steps, trials, units)
    simulation = Simulation(network, trials=trials, seed=simulation_seed, **runtime)
    delay = 1 if hidden else 0
    if delay:  # the random layer's first rates, before anything is learned
        simulation.run(1, inputs={"input.x": shown[:1]}, plastic=False)
        shown = np.concatenate([shown[1:], shown[-1:]])  # plastic step k sees the rates of item k, shown a step before
    simulation.run(len(order), inputs={"input.x": shown, "output.target": wanted})
    test = np.repeat(_with_bias(items)[:, None], trials, axis=1)
    if delay:
        test = np.concatenate([test, test[-1:]])
    run = simulation.run(len(test), inputs={"input.x": test}, plastic=False, record={"output.I": 1})
    fields = run["output.I"].values[delay:, :, 0]  # (items, trials)
    right = _right(fields, targets[:, None])
    return {"accuracy": right.mean(axis=0), "recalled": (right == 1).mean(axis=0), "chance": 0.5}


def _right(fields: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1 where the sign of a field is the target's, 0 where it is not, 1/2 for a field of exactly
    zero (no answer is a coin toss), so that weights that learned nothing score chance."""
    return np.where(fields == 0, 0.5, (np.sign(fields) == targets).astype(float))


def _patterns(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _scores(recalled: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bit accuracy and the fraction of items with overlap >= RECALLED, per trial (items on axis 1)."""
    overlap = (np.sign(recalled) * wanted).mean(axis=-1)
    return _right(recalled, wanted).mean(axis=(1, 2)), (overlap >= RECALLED).mean(axis=1)


def _key_value(memory, rule, n, pairs, epochs, beta, steps, trials, runtime, seed) -> dict[str, np.ndarray]:
    data_seed, run_seed = _children(seed)
    rng = np.random.default_rng(data_seed)
    keys, values = _patterns(rng, (trials, pairs, n)), _patterns(rng, (trials, pairs, n))
    if memory == "rule":
        recalled = _store_and_read(rule, keys, values, epochs, runtime, run_seed)
    elif memory in ("hopfield", "modern"):
        stored = np.concatenate([keys, values], axis=-1)
        cues = np.concatenate([keys, _patterns(rng, values.shape)], axis=-1)  # the value half a random guess
        recalled = np.stack([_associative(memory, rule, stored[t], cues[t], beta, runtime, run_seed) for t in range(trials)])[..., n:]
    else:
        recalled = np.stack([_predictive_coding(keys[t], values[t], epochs, steps, runtime, run_seed) for t in range(trials)])
    accuracy, fraction = _scores(recalled, values)
    return {"accuracy": accuracy, "recalled": fraction, "capacity": fraction * pairs / n, "chance": 0.5}


def _store_and_read(rule, keys, values, epochs, runtime, seed) -> np.ndarray:
    trials, pairs, n = keys.shape
    key_units = Population(n, init={"x": 0.0}, name="key")
    equations = ["y = I" if _supervised(rule) else "y = target", "e = target - I"]
    value_units = Population(n, equations, init={"target": 0.0}, name="value")
    network = Network([key_units, value_units],
                      [_projection(key_units, value_units, rule, _READOUT_OFFERS, source="x", init={"w": 0.0}, name="memory")])
    simulation = Simulation(network, trials=trials, seed=seed, **runtime)
    shown = np.tile(keys.transpose(1, 0, 2), (epochs, 1, 1))
    simulation.run(len(shown), inputs={"key.x": shown, "value.target": np.tile(values.transpose(1, 0, 2), (epochs, 1, 1))})
    run = simulation.run(pairs, inputs={"key.x": keys.transpose(1, 0, 2)}, plastic=False, record={"value.I": 1})
    return run["value.I"].values.transpose(1, 0, 2)


def _associative(memory, rule, stored, cues, beta, runtime, seed) -> np.ndarray:
    if memory == "modern":
        from plasticity.networks.modern import ModernHopfield

        return ModernHopfield(stored, beta=beta, dtype=runtime["dtype"]).retrieve(
            cues, steps=1, backend=runtime["backend"], device=runtime["device"])
    from plasticity.networks.hopfield import HopfieldNetwork

    network = HopfieldNetwork(stored, "hebbian" if rule is None else rule, dtype=runtime["dtype"], backend=runtime["backend"])
    return network.retrieve(cues, update="async", seed=seed, backend=runtime["backend"], device=runtime["device"]).states


def _predictive_coding(keys, values, epochs, steps, runtime, seed) -> np.ndarray:
    from plasticity.networks.predictive_coding import PredictiveCodingModel

    n = keys.shape[1]
    model = PredictiveCodingModel([n, n], activation="linear", mode="pc", lr=1.0 / n, gamma=0.1, batch=len(keys),
                                  bias=False, seed=seed, **runtime)
    for _ in range(epochs):
        model.train_batch(keys, values, steps)
    return model.predict(keys)


def _sequence(rule, n, length, epochs, trials, runtime, seed) -> dict[str, np.ndarray]:
    data_seed, run_seed = _children(seed)
    patterns = _patterns(np.random.default_rng(data_seed), (trials, length, n))
    units = Population(n, ["x = y", "y = sign(I)"], init={"x": 0.0, "y": 0.0}, name="state")
    network = Network([units], [_projection(units, units, rule, _SEQUENCE_OFFERS, source="y", init={"w": 0.0},
                                            mask=~np.eye(n, dtype=bool), name="recurrent")])
    simulation = Simulation(network, trials=trials, seed=run_seed, **runtime)
    before = np.tile(patterns[:, :-1].transpose(1, 0, 2), (epochs, 1, 1))
    after = np.tile(patterns[:, 1:].transpose(1, 0, 2), (epochs, 1, 1))
    simulation.run(len(before), inputs={"state.x": before, "state.y": after}, stages=("plasticity",))
    simulation.set("state.y", patterns[:, 0])
    run = simulation.run(length - 1, plastic=False, stages=("drive", "units"), record={"state.y": 1})
    recalled = run["state.y"].values.transpose(1, 0, 2)  # (trials, length - 1, n)
    accuracy, fraction = _scores(recalled, patterns[:, 1:])
    return {"accuracy": accuracy, "recalled": fraction, "chance": 0.5}


_DEFAULT_RULES = {"gating": "delta", "xor": "delta", "parity": "delta", "sequence": "hebb"}


@protocol("motifs")
def motifs(
    *,
    task: Annotated[str, Choice(*MOTIFS)] = "xor",
    rule: Annotated[object, Maybe(RuleSpec())] = None,
    memory: Annotated[str, Choice(*MEMORIES)] = "rule",
    hidden: Annotated[int, Int(0, 4096)] = 64,
    activation: Annotated[str, Choice(*ACTIVATIONS)] = "tanh",
    gain: Annotated[float, Real(0, 100, low_open=True)] = 2.0,
    n: Annotated[int, Int(2, 4096)] = 32,
    pairs: Annotated[int, Int(1, 4096)] = 8,
    length: Annotated[int, Int(2, 4096)] = 8,
    epochs: Annotated[int, Int(1, 10_000)] = 100,
    beta: Annotated[float, Real(0, 1e4, low_open=True)] = 1.0,
    T: Annotated[int, Int(0, 1000)] = 20,
    trials: Annotated[int, Int(1, 1000)] = 8,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Score ``rule`` on the motif ``task`` (module docstring): ``accuracy(trial)`` and ``chance``.

    Parameters: ``task`` (gating, xor, parity, key_value, sequence); ``rule`` (default: ``delta``
    for the readout motifs and a ``"rule"`` memory, ``hebb`` for sequences, ``hebbian`` storage for
    a Hopfield memory; a ``"modern"`` or ``"pc"`` memory takes none); ``memory`` (key_value);
    ``hidden`` random units with ``activation`` and weight ``gain`` (readout motifs; 0: none);
    ``n`` units per pattern, ``pairs`` stored (key_value), ``length`` of the sequence; ``epochs``
    passes of storage or training; ``beta`` (modern), ``T`` inference steps (pc); ``trials``.

    Records ``accuracy(trial)`` (fraction of items, or of bits for the memory motifs, right),
    ``recalled(trial)`` (fraction of items right: overlap >= 0.9 for memories), ``chance`` and,
    for key_value, ``capacity(trial)`` (pairs recalled per unit).
    """
    runtime = {"backend": backend, "dtype": dtype, "device": device}
    if task == "key_value" and memory in ("modern", "pc"):
        if rule is not None:
            raise ConfigError(f"memory {memory!r} stores by its own rule; leave rule out (rule is for memories 'rule' and 'hopfield')")
    elif rule is None:
        rule = None if task == "key_value" and memory == "hopfield" else _rule_of(_DEFAULT_RULES.get(task, "delta"))
    if rule is not None:
        _check_rule(rule, task)
    if task in ("gating", "xor", "parity"):
        result = _readout(task, rule, hidden, activation, gain, epochs, trials, runtime, seed)
    elif task == "key_value":
        result = _key_value(memory, rule, n, pairs, epochs, beta, T, trials, runtime, seed)
    else:
        result = _sequence(rule, n, length, epochs, trials, runtime, seed)
    data = {
        "accuracy": ("trial", np.asarray(result["accuracy"], float),
                     {"long_name": "fraction right (items, or bits for memories)", "units": "1"}),
        "recalled": ("trial", np.asarray(result["recalled"], float), {"long_name": "fraction of items recalled", "units": "1"}),
        "chance": ((), float(result["chance"]), {"long_name": "accuracy of chance", "units": "1"}),
    }
    if "capacity" in result:
        data["capacity"] = ("trial", np.asarray(result["capacity"], float), {"long_name": "pairs recalled per unit", "units": "1"})
    dataset = xr.Dataset(data, coords={"trial": np.arange(trials)})
    dataset.attrs["rule_equations"] = "; ".join(rule.equations) if rule is not None else ""
    return dataset


def _rule_of(name: str) -> Rule:
    from plasticity.rules import get_rule

    return get_rule(name)
