"""Learning capacity of any rule: the ``learn.capacity`` protocol.

A rule (a library name, a table of equations or a :class:`~plasticity.rule.Rule`) learns a
fixed data set of associations, presented one item per step, epoch after epoch
(:meth:`~plasticity.simulation.Simulation.present`), until the fraction of them it gets right
meets a criterion or the budget of epochs runs out. Every trial has its own data set and its
own weights; a trial that meets the criterion stops learning while the others go on.

Architectures (``n`` inputs, optionally with a constant input 1 as a bias, ``p = round(load * n)``
items):

* ``"perceptron"``: ``n`` inputs to one output unit; each item is an input pattern and a random
  +-1 target (a dichotomy; Rosenblatt 1958, Cover 1965).
* ``"hetero"``: ``n`` inputs to ``m`` output units; each item is an input pattern and ``m``
  random +-1 targets (hetero-association; Kohonen 1972).
* ``"recurrent"``: ``n`` units learning their own patterns as fixed points: the input is the
  pattern and every unit's target its own sign in it (``sign(W xi) = xi``; Gardner 1988), the
  self-couplings masked to zero. It has no separate target: a rule that reads ``target_post``
  is refused.

What the output units offer a rule (the motifs' convention, :mod:`plasticity.networks.motifs`):
the summed input ``I = W x``, the target ``target``; a rule that reads ``target_post`` is
supervised and sees its free linear output ``y = I``, any other learns by teacher forcing, its
output clamped to the target (``y = target``), as Hebbian association does. Predictive coding's
names are offered too: the prediction ``mu = I`` and the error ``e = target - I`` on the output
side, the rate ``fx = x`` on the input side (so the library's ``pc`` rule, ``e_post * fx_pre``,
runs as it does at a clamped output layer). Only the variables a rule reads are built. Weights
start at zero.

An item is right when its field has the target's sign (``I * target > 0``; a field of zero is
wrong), read after every epoch from the engine's weights: ``I = W x`` for every item of a trial's
data set (float64). ``fraction`` right is over items and output units. After an epoch only the
trials still learning are read, each only until it has more wrong than the criterion allows
(:func:`wrong_counts`, compiled; a trial far from its criterion costs a few items, not an epoch).

Inputs: ``"binary"`` +-1 with equal probability, ``"gaussian"`` standard normal, ``"sparse"``
1 with probability ``coding_level`` and 0 otherwise.

References
----------
- F. Rosenblatt (1958), The perceptron. Psychological Review 65:386-408.
- T. M. Cover (1965), Geometrical and statistical properties of systems of linear inequalities
  with applications in pattern recognition. IEEE Trans. Electron. Comput. 14:326-334.
- A. B. J. Novikoff (1962), On convergence proofs on perceptrons. Symposium on the Mathematical
  Theory of Automata 12:615-622.
- E. Gardner (1988), The space of interactions in neural network models. J. Phys. A 21:257-270.
- T. Kohonen (1972), Correlation matrix memories. IEEE Trans. Comput. C-21:353-359.
"""

from __future__ import annotations

from typing import Annotated

import numba
import numpy as np
import xarray as xr

from plasticity.errors import ConfigError
from plasticity.network import Network
from plasticity.params import Choice, Flag, Int, Maybe, Real, RuleSpec
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.protocols import protocol
from plasticity.provenance import to_json
from plasticity.rule import Rule
from plasticity.simulation import Simulation

__all__ = [
    "ARCHITECTURES",
    "INPUTS",
    "ORDERS",
    "OUTPUT_OFFERS",
    "INPUT_OFFERS",
    "learning_rule",
    "learning_data",
    "learning_network",
    "fields",
    "wrong_counts",
    "allowed_wrong",
    "train",
    "capacity",
]

ARCHITECTURES = ("perceptron", "hetero", "recurrent")
INPUTS = ("binary", "gaussian", "sparse")
ORDERS = ("fixed", "shuffled")
#: Output-side variables a rule may read, with the equation that makes each (``y`` depends on the rule).
OUTPUT_OFFERS = {"I": None, "target": None, "y": None, "mu": "mu = I", "e": "e = target - I"}
#: Input-side variables a rule may read.
INPUT_OFFERS = {"x": None, "fx": "fx = x"}
#: Rule parameters that ``lr`` sets, the first a rule has.
LEARNING_RATES = ("eta", "lr")
MAX_UNITS = 4096
MAX_EPOCHS = 100_000
MAX_TRIALS = 10_000


def _supervised(rule: Rule) -> bool:
    return "target" in rule.unit_reads("post")


def learning_rule(rule: Rule, architecture: str, lr: float | None) -> Rule:
    """``rule`` checked for ``architecture`` (what it reads is offered, it writes ``w``, it reads no
    modulator), with its learning rate set to ``lr`` when given."""
    label = rule.name or "(unnamed)"
    if rule.modulators:
        raise ConfigError(f"rule {label!r} reads the modulator(s) {', '.join(rule.modulators)}, which learn.capacity does not set")
    if not any(eq.level == "synapse" and eq.var == "w" for eq in rule.parsed):
        raise ConfigError(f"rule {label!r} never writes the weight w; a rule that learns needs an equation 'w += ...'")
    for side, offers in (("post", OUTPUT_OFFERS), ("pre", INPUT_OFFERS)):
        unknown = sorted(rule.unit_reads(side) - set(offers))
        if unknown:
            raise ConfigError(
                f"rule {label!r} reads {', '.join(f'{v}_{side}' for v in unknown)}, which learn.capacity does not offer; "
                f"valid: {', '.join(f'{v}_{side}' for v in offers)}"
            )
    if architecture == "recurrent" and _supervised(rule):
        raise ConfigError(
            f"rule {label!r} reads target_post, but architecture 'recurrent' has no target besides the pattern; "
            "use architecture 'perceptron' or 'hetero', or a rule that reads y_post (clamped to the pattern)"
        )
    if lr is not None:
        names = [name for name in LEARNING_RATES if name in rule.params]
        if not names:
            raise ConfigError(
                f"lr: rule {label!r} has no learning-rate parameter ({' or '.join(LEARNING_RATES)}); "
                f"its parameters: {', '.join(rule.params) or '(none)'}; leave lr out"
            )
        rule = rule.with_params(**{names[0]: lr})
    return rule


def learning_data(
    architecture: str, n: int, m: int, p: int, inputs: str, coding_level: float, bias: bool, trials: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Every trial's data set: patterns ``(trials, p, n [+ 1 with bias])`` and +-1 targets ``(trials, p, outputs)``."""
    shape = (trials, p, n)
    if inputs == "binary":
        patterns = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    elif inputs == "gaussian":
        patterns = rng.standard_normal(shape)
    else:
        patterns = (rng.random(shape) < coding_level).astype(np.float64)
    if architecture == "recurrent":
        targets = np.where(patterns > 0, 1.0, -1.0) if inputs != "sparse" else 2.0 * patterns - 1.0
    else:
        outputs = 1 if architecture == "perceptron" else m
        targets = np.where(rng.random((trials, p, outputs)) < 0.5, -1.0, 1.0)
    if bias:
        patterns = np.concatenate([patterns, np.ones((trials, p, 1))], axis=-1)
    return patterns, targets


def learning_network(rule: Rule, architecture: str, inputs: int, outputs: int) -> Network:
    """``inputs`` units ``x`` projecting through ``rule`` to ``outputs`` units (module docstring);
    ``recurrent``: the first ``outputs`` inputs are the same units, their self-couplings masked."""
    pre_reads, post_reads = rule.unit_reads("pre"), rule.unit_reads("post")
    source = Population(inputs, [INPUT_OFFERS[v] for v in sorted(pre_reads) if INPUT_OFFERS.get(v)], init={"x": 0.0}, name="input")
    equations = ["y = I" if _supervised(rule) else "y = target"] if "y" in post_reads else []
    equations += [OUTPUT_OFFERS[v] for v in sorted(post_reads) if OUTPUT_OFFERS.get(v)]
    output = Population(outputs, equations, init={"target": 0.0}, name="output")
    mask = None
    if architecture == "recurrent":
        mask = np.ones((outputs, inputs), dtype=bool)
        mask[np.arange(outputs), np.arange(outputs)] = False
    weights = Projection(source, output, rule, source="x", init={"w": 0.0}, mask=mask, name="weights")
    return Network([source, output], [weights])


def fields(weights: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """The summed inputs ``I = W x`` of every item: ``(trials, items, outputs)`` from weights
    ``(trials, outputs, inputs)`` and patterns ``(trials, items, inputs)``, in float64."""
    return np.einsum("toi,tpi->tpo", weights.astype(np.float64), patterns)


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _wrong_counts(weights, patterns, targets, reading, allowed, wrong):  # pragma: no cover - compiled
    """wrong[t] = the (item, output) pairs of trial t with ``I * target <= 0``, for the trials flagged
    in ``reading``, counted until one more than ``allowed``; ``I`` summed in float64."""
    trials, items, inputs = patterns.shape
    outputs = targets.shape[2]
    for t in range(trials):
        if not reading[t]:
            continue
        count = 0
        for p in range(items):
            x = patterns[t, p]
            for o in range(outputs):
                row = weights[t, o]
                field = 0.0
                for i in range(inputs):
                    field += np.float64(row[i]) * x[i]
                if not field * targets[t, p, o] > 0:
                    count += 1
            if count > allowed:
                break
        wrong[t] = count


def wrong_counts(weights: np.ndarray, patterns: np.ndarray, targets: np.ndarray, reading: np.ndarray | None = None,
                 allowed: int | None = None) -> np.ndarray:
    """Per trial, the (item, output) pairs whose field ``I = W x`` (float64) does not have the target's
    sign, as ``(fields(weights, patterns) * targets <= 0).sum(axis=(1, 2))`` counts them (the twin
    the tests compare), for the trials flagged in ``reading`` (default all; 0 for the others); with
    ``allowed``, a trial's count stops once it exceeds ``allowed`` (items are read in order, all
    outputs of an item together), which is enough to tell whether its fraction right meets a
    criterion. Weights ``(trials, outputs, inputs)``, patterns ``(trials, items, inputs)``, targets
    ``(trials, items, outputs)``."""
    trials, items, _ = patterns.shape
    reading = np.ones(trials, bool) if reading is None else reading
    wrong = np.zeros(trials, np.int64)
    limit = items * targets.shape[2] if allowed is None else allowed
    _wrong_counts(np.ascontiguousarray(weights), np.ascontiguousarray(patterns, dtype=np.float64),
                  np.ascontiguousarray(targets, dtype=np.float64), reading, limit, wrong)
    return wrong


def allowed_wrong(total: int, criterion: float) -> int:
    """The most wrong of ``total`` with which the fraction right, ``(total - wrong) / total`` in float64
    (as a mean of booleans computes it), still meets ``criterion``; -1 if none."""
    wrong = min(total, max(0, int(np.floor(total * (1.0 - criterion)))))
    while wrong < total and (total - (wrong + 1)) / total >= criterion:
        wrong += 1
    while wrong >= 0 and (total - wrong) / total < criterion:
        wrong -= 1
    return wrong


#: Quantiles of each trial's weights recorded per epoch (``record_every``).
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _dynamics(weights: np.ndarray, before: np.ndarray, patterns: np.ndarray, targets: np.ndarray, epochs: int) -> dict:
    """What ``record_every`` records of a trial's weights: loss, fraction right, norm, quantiles and
    the mean absolute change per epoch since ``before`` (``epochs`` ago)."""
    flat = weights.reshape(len(weights), -1)
    summed = fields(weights, patterns)
    return {
        "loss": ((targets - summed) ** 2).mean(axis=(1, 2)) / 2,
        "fraction": (summed * targets > 0).mean(axis=(1, 2)),
        "weight_norm": np.sqrt((flat**2).sum(axis=1)),
        "weight_quantiles": np.quantile(flat, QUANTILES, axis=1).T,
        "mean_abs_update": np.abs(flat - before.reshape(len(before), -1)).mean(axis=1) / max(epochs, 1),
    }


def train(
    simulation: Simulation, patterns: np.ndarray, targets: np.ndarray, *, epochs: int, criterion: float, order: str,
    record_every: int = 0,
) -> dict[str, np.ndarray]:
    """Present the data sets epoch after epoch until each trial meets ``criterion`` (fraction right) or
    ``epochs`` run out; a trial that meets it stops learning.

    Returns per trial ``met`` (bool), ``epoch`` (the epoch after which it met the criterion, 0 if
    it did before learning, NaN if never), ``fraction`` right at the end, ``weight_norm``
    (Frobenius norm of its weights) and ``updates`` (presentations that changed its weights).
    With ``record_every = k > 0`` also ``dynamics``: at epochs 0, k, 2k, ... up to ``epochs`` the
    ``loss`` (mean of (target - I)^2 / 2), ``fraction`` right, ``weight_norm``, ``weight_quantiles``
    (:data:`QUANTILES` of each trial's weights) and ``mean_abs_update`` (mean |change of a weight|
    per epoch since the record before), each ``(records, trials[, quantiles])``; a trial's values
    stay as they were once it stopped learning (its weights do), also after every trial stopped.
    """
    trials = simulation.trials
    # the engine rounds what it is shown to its dtype: in float32 shown as float32 (half the memory read per step)
    shown = np.float32 if simulation.dtype == "float32" else np.float64
    data = {"input.x": patterns.astype(shown), "output.target": targets.astype(shown)}
    total = targets.shape[1] * targets.shape[2]
    allowed = allowed_wrong(total, criterion)

    def right() -> np.ndarray:
        return (total - wrong_counts(simulation.get("weights.w"), patterns, targets)) / total

    fraction = right()
    met = fraction >= criterion
    epoch = np.where(met, 0.0, np.nan)
    updates = np.zeros(trials, dtype=np.int64)
    records: list[dict] = []
    previous = simulation.get("weights.w").astype(np.float64)
    if record_every:
        records.append(_dynamics(previous, previous, patterns, targets, 0))
    for current in range(1, epochs + 1):
        if met.all():
            break
        updates += simulation.present(data, order=order, learning=~met, count_updates=True)
        newly = ~met & (wrong_counts(simulation.get("weights.w"), patterns, targets, ~met, allowed) <= allowed)
        epoch[newly] = current
        met |= newly
        if record_every and current % record_every == 0:
            weights = simulation.get("weights.w").astype(np.float64)
            records.append(_dynamics(weights, previous, patterns, targets, record_every))
            previous = weights
    weights = simulation.get("weights.w").astype(np.float64)
    result = {
        "met": met,
        "epoch": epoch,
        "fraction": right(),
        "weight_norm": np.sqrt((weights**2).sum(axis=(1, 2))),
        "updates": updates,
    }
    if record_every:
        while len(records) < epochs // record_every + 1:  # every trial stopped: the weights stay
            records.append({**_dynamics(weights, weights, patterns, targets, record_every)})
        result["dynamics"] = {key: np.stack([record[key] for record in records]) for key in records[0]}
    return result


@protocol("learn.capacity")
def capacity(
    *,
    rule: Annotated[object, RuleSpec()] = "perceptron",
    architecture: Annotated[str, Choice(*ARCHITECTURES)] = "perceptron",
    n: Annotated[int, Int(1, MAX_UNITS)] = 50,
    m: Annotated[int, Int(1, MAX_UNITS)] = 1,
    load: Annotated[float, Real(0, 100, low_open=True)] = 1.0,
    epochs: Annotated[int, Int(1, MAX_EPOCHS)] = 200,
    criterion: Annotated[float, Real(0, 1, low_open=True)] = 1.0,
    lr: Annotated[float | None, Maybe(Real(0, 1e6, low_open=True))] = None,
    trials: Annotated[int, Int(1, MAX_TRIALS)] = 20,
    input: Annotated[str, Choice(*INPUTS)] = "binary",
    coding_level: Annotated[float, Real(0, 1, low_open=True, high_open=True)] = 0.1,
    bias: Annotated[bool, Flag()] = False,
    order: Annotated[str, Choice(*ORDERS)] = "shuffled",
    record_every: Annotated[int, Int(0, MAX_EPOCHS)] = 0,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Learn ``round(load * n)`` random associations with ``rule`` until a fraction ``criterion`` of
    them is right or ``epochs`` passes run out (module docstring).

    Parameters: ``rule`` (library name, table of equations or Rule), ``architecture``
    ("perceptron" | "hetero" | "recurrent"), ``n`` inputs, ``m`` outputs (hetero only),
    ``load`` (items per input), ``epochs`` (budget of passes), ``criterion`` in (0, 1], ``lr``
    (the rule's ``eta`` or ``lr``; default the rule's own), ``trials``, ``input`` ("binary" |
    "gaussian" | "sparse" with ``coding_level``), ``bias`` (a constant input 1), ``order`` of the
    items in each epoch ("fixed" | "shuffled", per trial, from the run's seed), ``record_every``
    (epochs between records of the learning dynamics; 0: none).

    Records per trial: ``met``, ``epochs_to_criterion`` (NaN if not met), ``fraction`` right at the
    end, ``weight_norm``, ``updates`` (presentations that changed the weights) and
    ``presentations`` (items shown while learning); and ``patterns`` (the number of items),
    ``operations_per_synapse`` (per step, from ``rule.cost()``) and the rule's cost as attributes.
    With ``record_every = k``, against ``epoch`` (0, k, 2k, ...): ``loss_epoch``, ``fraction_epoch``,
    ``weight_norm_epoch``, ``weight_quantiles_epoch`` (over ``quantile``) and ``mean_abs_update``
    (per epoch since the record before; see :func:`train`).
    """
    items = int(round(load * n))
    if items < 1:
        raise ConfigError(f"load {load!r} with n = {n} yields zero associations (round(load * n) = 0); load must be >= {0.5 / n:g}")
    rule = learning_rule(rule, architecture, lr)
    outputs = {"perceptron": 1, "hetero": m, "recurrent": n}[architecture]
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    data_seed, simulation_seed = root.spawn(2)
    patterns, targets = learning_data(architecture, n, m, items, input, coding_level, bias, trials, np.random.default_rng(data_seed))
    network = learning_network(rule, architecture, patterns.shape[-1], outputs)
    simulation = Simulation(network, trials=trials, backend=backend, seed=simulation_seed, dtype=dtype, device=device)
    result = train(simulation, patterns, targets, epochs=epochs, criterion=criterion, order=order, record_every=record_every)
    cost = rule.cost()
    operations = cost.adds + cost.multiplies + cost.divides + cost.functions + cost.comparisons
    learning_epochs = np.where(result["met"], result["epoch"], epochs)
    dataset = xr.Dataset(
        {
            "met": ("trial", result["met"], {"long_name": f"fraction right reached {criterion:g}"}),
            "epochs_to_criterion": ("trial", result["epoch"], {"long_name": "epochs to criterion", "units": "epochs"}),
            "fraction": ("trial", result["fraction"], {"long_name": "fraction of items right", "units": "1"}),
            "weight_norm": ("trial", result["weight_norm"], {"long_name": "|W| (Frobenius)"}),
            "updates": ("trial", result["updates"], {"long_name": "presentations that changed the weights"}),
            "presentations": ("trial", (learning_epochs * items).astype(np.int64), {"long_name": "items shown while learning"}),
            "patterns": ((), items, {"long_name": "associations (items) learned"}),
            "operations_per_synapse": ((), operations, {"long_name": "operations per synapse per step (rule.cost())"}),
        },
        coords={"trial": np.arange(trials)},
    )
    if record_every:
        dynamics = result["dynamics"]
        dataset = dataset.assign_coords(epoch=("epoch", record_every * np.arange(len(dynamics["loss"])), {"units": "epochs"}),
                                         quantile=list(QUANTILES))
        for key, long_name in (("loss", "mean (target - I)^2 / 2"), ("fraction", "fraction of items right"),
                               ("weight_norm", "|W| (Frobenius)")):
            dataset[f"{key}_epoch"] = (("epoch", "trial"), dynamics[key], {"long_name": long_name})
        dataset["weight_quantiles_epoch"] = (("epoch", "trial", "quantile"), dynamics["weight_quantiles"],
                                             {"long_name": "quantiles of the trial's weights"})
        dataset["mean_abs_update"] = (("epoch", "trial"), dynamics["mean_abs_update"],
                                      {"long_name": "mean |change of a weight| per epoch since the record before"})
    dataset.attrs["rule_equations"] = to_json(list(rule.equations))
    dataset.attrs["rule_cost"] = to_json(cost.as_dict())
    return dataset
