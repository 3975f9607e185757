"""Hierarchical predictive coding networks on the engine, and the ``pc.train`` protocol.

Layer ``l = 0 .. L`` is a population with values ``x``, errors ``e = x - mu`` against the
prediction ``mu = W_l f(x_{l-1}) + b_l`` (the summed drive of projection ``w{l}`` and of the
bias projection ``b{l}``), rates ``fx = f(x)`` and slopes ``fp = f'(x)``. Projection ``w{l}``
feeds ``W_l^T e_l`` back to the summed input ``g`` of layer ``l - 1``. Inference is gradient
descent on the energy ``E = sum_l |e_l|^2 / 2`` over the free values,
``x += gamma * free * (fp * g - e)``, and learning the local rule ``dW = lr * e_post * fx_pre``
(Rao & Ballard 1999; Whittington & Bogacz 2017). Everything is written as equations; one
engine step is one inference step, in the stage order

    rates -> drive -> errors -> feedback -> plasticity -> values

so a learning step reads errors and rates of the same state and the feedback still uses the
weights from before the update. Layer parameters set between runs (``Simulation.set``) choose
what a step does: ``free`` (1: the value is inferred, 0: clamped to what was set), ``ff`` (1: the
value follows its prediction, ``x = mu``: L such steps are the feedforward sweep) and, in ``fpa``
mode, ``hold`` (1: rates and slopes stay at their feedforward values). As parameters, not
per-unit variables, they cost a step no reads and a switch no array writes. A training batch's
sweep runs only the stages it needs (``SWEEP_STAGES``: no errors or feedback, which values that
follow their predictions ignore) and its pc/fpa update only ``UPDATE_STAGES`` (no feedback or
values, which the update does not use). In ``pc`` and ``fpa`` the top layer also keeps its
feedforward prediction (``prediction``: set after a full sweep; in a training batch, whose sweep
stops a step short, taken from ``mu`` by the first inference step's errors stage while ``take``
is 1, which that stage clears), so that the batch reads it after its inference run instead of
splitting the run after the first step.

Modes (all on the same engine):

* ``pc``: feedforward initialisation, ``T`` inference steps with the input and target clamped,
  then one weight update; with ``T`` large this is prospective configuration (relax to
  equilibrium, then learn; Song et al. 2024).
* ``zil``: zero-divergence inference learning (Song et al. 2020): feedforward initialisation,
  ``gamma = 1`` and projection ``w{l}`` updated at inference step ``L - l``, its distance from the
  output, chosen with ``Simulation.run(plastic={...})``; equals backpropagation exactly.
* ``fpa``: the fixed-prediction assumption (Millidge, Tschantz & Buckley 2020): predictions,
  rates and slopes held at their feedforward values during inference; at convergence the
  errors are the backpropagated gradients.
* ``bp``: plain backpropagation on the same engine: the feedforward sweep, then the output
  error sent down through the transposed weights, hidden errors ``e = fp * g`` (the deltas),
  each layer updated as its delta arrives.

References
----------
- R. P. N. Rao, D. H. Ballard (1999), Nat. Neurosci. 2:79-87.
- J. C. R. Whittington, R. Bogacz (2017), Neural Comput. 29:1229-1262.
- Y. Song, T. Lukasiewicz, Z. Xu, R. Bogacz (2020), Can the brain do backpropagation? Exact
  implementation of backpropagation in predictive coding networks. NeurIPS 33.
- B. Millidge, A. Tschantz, C. L. Buckley (2020), Predictive coding approximates backprop along
  arbitrary computation graphs. arXiv:2006.04182 (Neural Comput. 2022).
- Y. Song, B. Millidge, T. Salvatori, T. Lukasiewicz, Z. Xu, R. Bogacz (2024), Inferring neural
  activity before plasticity as a foundation for learning beyond backpropagation. Nat. Neurosci. 27:348-358.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Mapping, Sequence

import numpy as np
import xarray as xr

from plasticity.analysis.alignment import target_alignment
from plasticity.analysis.energy import pc_energy
from plasticity.errors import ConfigError, DivergenceError
from plasticity.init import normal
from plasticity.network import Network
from plasticity.params import Choice, Flag, Int, Maybe, Real, Sizes, Text
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.protocols import protocol
from plasticity.rules.predictive_coding import PC_ADAM, PC_SGD
from plasticity.simulation import Simulation
from plasticity.networks.datasets import load_dataset

__all__ = [
    "ACTIVATIONS",
    "ALIGNMENT_RECORDS",
    "DIRECTIONS",
    "MODES",
    "OPTIMIZERS",
    "STAGES",
    "pc_network",
    "PredictiveCodingModel",
    "train",
]

#: Activation name -> (rate f(x), slope f'(x)); the slope may read the rate ``fx``.
_RATES = {
    "linear": ("x", "1"),
    "tanh": ("tanh(x)", "1 - fx * fx"),
    "sigmoid": ("sigmoid(x)", "fx * (1 - fx)"),
    "relu": ("relu(x)", "heaviside(x)"),
    "leaky_relu": ("where(x > 0, x, slope * x)", "where(x > 0, 1, slope)"),
}
ACTIVATIONS = tuple(_RATES)
MODES = ("pc", "zil", "fpa", "bp")
DIRECTIONS = ("discriminative", "generative")
OPTIMIZERS = ("sgd", "adam")
#: How often pc.train records target alignment: never, its mean per epoch, or per training batch.
ALIGNMENT_RECORDS = ("none", "epoch", "step")
STAGES = ("rates", "drive", "errors", "feedback", "plasticity", "values")
#: The stages of a sweep step with the values following their predictions (errors and feedback,
#: which the values then ignore, skipped) and of a pc/fpa weight update (feedback and values,
#: which the update does not use, skipped).
SWEEP_STAGES = ("rates", "drive", "values")
UPDATE_STAGES = ("rates", "drive", "errors", "plasticity")
#: Upper bounds of pc.train's sizes: a layer's width (a 16,384 x 16,384 float32 weight matrix is
#: 1 GiB), the number of layers, inference steps, batch and epochs.
MAX_LAYER = 16_384
MAX_LAYERS = 64
MAX_STEPS = 100_000
MAX_BATCH = 1_000_000
MAX_EPOCHS = 100_000
#: Slope of the leaky relu for negative inputs.
LEAKY_SLOPE = 0.01


def _choice(name: str, value, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, valid))}, got {value!r}")
    return value


def _check_sizes(sizes) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise ConfigError(f"sizes must be a list of layer sizes such as [64, 128, 10], got {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ConfigError(f"sizes needs at least two layers (input and output), got {sizes!r}")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ConfigError(f"sizes must hold positive integers, got {sizes!r}")
    return [int(size) for size in sizes]


def _positive(name: str, value, *, integer: bool = False) -> None:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not np.isfinite(value) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def _non_negative_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


def _rate_equations(activation: str, hold: bool) -> list[str]:
    rate, slope = _RATES[activation]
    if hold:
        return [f"fx = where(hold > 0, fx, {rate})", f"fp = where(hold > 0, fp, {slope})"]
    return [f"fx = {rate}", f"fp = {slope}"]


def _layer(index: int, n: int, role: str, activation: str, mode: str, gamma: float, infer_bottom: bool) -> Population:
    """Layer ``index`` as a population; ``role`` is ``"bottom"``, ``"hidden"`` or ``"top"``."""
    params = {"gamma": gamma, "free": 0.0}
    if activation == "leaky_relu" and role == "hidden":
        params["slope"] = LEAKY_SLOPE
    init = {"x": 0.0}
    stages: dict[str, list[str]] = {}
    if role == "bottom":
        # the bottom layer's rate is its value: set with it by the clamp, or computed when it is inferred
        init["fx"] = 0.0
        if infer_bottom:
            stages["rates"] = ["fx = x"]
            if mode != "bp":
                stages["values"] = ["x += gamma * free * g"]
    elif role == "hidden":
        init.update(e=0.0, fx=0.0, fp=0.0)
        params.update(free=1.0, ff=0.0)
        if mode == "fpa":
            params["hold"] = 0.0
        stages["rates"] = _rate_equations(activation, hold=mode == "fpa")
        if mode == "bp":
            stages["errors"] = ["e = fp * g"]
            stages["values"] = ["x = where(ff > 0, mu, x)"]
        else:
            stages["errors"] = ["e = x - mu"]
            stages["values"] = ["x = where(ff > 0, mu, x + gamma * free * (fp * g - e))"]
    else:
        init["e"] = 0.0
        params["ff"] = 0.0
        stages["errors"] = ["e = x - mu"]
        if mode in ("pc", "fpa"):  # a training batch's prediction, kept by its first inference step
            init.update(prediction=0.0, take=0.0)
            stages["errors"] += ["prediction = where(take > 0, mu, prediction)", "take = 0"]
        stages["values"] = ["x = where(ff > 0, mu, x - gamma * free * e)"]
    return Population(n, stages, init, params=params, name=f"layer{index}")


def pc_network(
    sizes: Sequence[int],
    *,
    activation: str = "tanh",
    mode: str = "pc",
    gamma: float = 0.1,
    lr: float = 0.01,
    optimizer: str = "sgd",
    bias: bool = True,
    infer_bottom: bool = False,
) -> Network:
    """The predictive coding network with layer sizes ``sizes`` (bottom first).

    Populations ``layer0 .. layerL`` (and ``bias``, one unit of rate 1, when ``bias``);
    projections ``w1 .. wL`` (``w{l}``: ``layer{l-1} -> layer{l}``, weights normal with std
    ``1/sqrt(fan in)``) and ``b1 .. bL`` (biases, zero), all shared over the trials of a
    minibatch and learning with the ``pc`` or ``pc_adam`` rule. ``infer_bottom`` also feeds
    errors back to ``layer0`` so that it can be inferred (a generative network whose data
    sits at the top).
    """
    sizes = _check_sizes(sizes)
    _choice("activation", activation, ACTIVATIONS)
    _choice("mode", mode, MODES)
    _choice("optimizer", optimizer, OPTIMIZERS)
    _positive("gamma", gamma)
    _positive("lr", lr)
    depth = len(sizes) - 1
    layers = [
        _layer(index, n, "bottom" if index == 0 else "top" if index == depth else "hidden", activation, mode, gamma, infer_bottom)
        for index, n in enumerate(sizes)
    ]
    rule = (PC_ADAM if optimizer == "adam" else PC_SGD).with_params(lr=lr)
    populations = list(layers)
    projections = []
    for index in range(1, depth + 1):
        feedback = ("e", "g") if index >= 2 or infer_bottom else None
        projections.append(
            Projection(
                layers[index - 1], layers[index], rule, source="fx", target="mu", feedback=feedback,
                init={"w": normal(1.0 / np.sqrt(sizes[index - 1]))}, shared=True, name=f"w{index}",
            )
        )
    if bias:
        one = Population(1, init={"fx": 1.0}, name="bias")
        populations.append(one)
        for index in range(1, depth + 1):
            projections.append(
                Projection(one, layers[index], rule, source="fx", target="mu", init={"w": 0.0}, shared=True, name=f"b{index}")
            )
    return Network(populations, projections, stages=STAGES)


class PredictiveCodingModel:
    """A predictive coding network on a :class:`~plasticity.simulation.Simulation`.

    ``batch`` examples run together as the simulation's trials. The methods set clamps and
    switches (``free``, ``ff``, ``hold``) and run engine steps; they never compute the model
    themselves.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        activation: str = "tanh",
        mode: str = "pc",
        gamma: float = 0.1,
        lr: float = 0.01,
        optimizer: str = "sgd",
        batch: int = 32,
        bias: bool = True,
        infer_bottom: bool = False,
        backend: str = "numba",
        seed: int | np.random.SeedSequence = 0,
        dtype: str = "float32",
        device: str | None = None,
    ):
        _positive("batch", batch, integer=True)
        if mode == "zil":
            gamma = 1.0  # Z-IL is defined with unit inference rate
        self.sizes = _check_sizes(sizes)
        self.mode = mode
        self.gamma = gamma
        self.depth = len(self.sizes) - 1
        self.bias = bias
        self.infer_bottom = infer_bottom
        self.network = pc_network(
            self.sizes, activation=activation, mode=mode, gamma=gamma, lr=lr, optimizer=optimizer,
            bias=bias, infer_bottom=infer_bottom,
        )
        self.sim = Simulation(self.network, trials=int(batch), backend=backend, seed=seed, dtype=dtype, device=device)
        self.batch = int(batch)
        self.top = f"layer{self.depth}"
        self.hidden = [f"layer{index}" for index in range(1, self.depth)]
        self._clamped: tuple[np.ndarray, np.ndarray | None] | None = None

    # state ------------------------------------------------------------------------------
    def weights(self) -> dict[str, np.ndarray]:
        """Every weight matrix and bias, by projection name (``w1``, ``b1``, ...)."""
        weights = {name: self.sim.get(f"{name}.w") for name in self.network.projections}
        return {name: value[:, 0] if name.startswith("b") else value for name, value in weights.items()}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set weight matrices (``w1``: post x pre) and bias vectors (``b1``: post) by name."""
        for name, value in weights.items():
            value = np.asarray(value, dtype=np.float64)
            self.sim.set(f"{name}.w", value[:, None] if name.startswith("b") and value.ndim == 1 else value)

    def energy(self) -> np.ndarray:
        """``sum_l |e_l|^2 / 2`` per trial from the errors of the last step: the energy of the state that
        step started from (in ``bp`` mode only the output error is an energy term)."""
        layers = [self.depth] if self.mode == "bp" else range(1, self.depth + 1)
        total = np.zeros(self.batch)
        for index in layers:
            error = self.sim.get(f"layer{index}.e")
            total += np.einsum("ij,ij->i", error, error)  # no temporary the size of the errors
        return 0.5 * total

    def _pad(self, values: np.ndarray, n: int, what: str) -> np.ndarray:
        values = np.asarray(values)
        if values.dtype not in (np.float32, np.float64):  # float data is set as it is, without a float64 copy
            values = values.astype(np.float64)
        if values.ndim != 2 or values.shape[1] != n:
            raise ConfigError(f"{what} must have shape (examples, {n}), got {values.shape}")
        if len(values) > self.batch:
            raise ConfigError(f"{what} has {len(values)} examples, more than the batch of {self.batch}")
        if len(values) < self.batch:
            values = np.concatenate([values, np.zeros((self.batch - len(values), n))])
        return values

    def _switch(self, layers: Sequence[str], var: str, value: float) -> None:
        for layer in layers:
            self.sim.set(f"{layer}.{var}", value)

    # phases -----------------------------------------------------------------------------
    def forward(self, data: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
        """Clamp ``data`` (and ``target``, if given) and run the feedforward sweep; the output prediction.

        After the sweep every hidden value equals its prediction, so hidden errors are zero.
        """
        rows = self._clamp(data, target)
        self.sim.advance(self.depth, plastic=False)
        self._end_sweep()
        prediction = self.sim.get(f"{self.top}.mu")
        if self.mode in ("pc", "fpa"):
            self.sim.set(f"{self.top}.prediction", prediction)
        return prediction[:rows]

    def _clamp(self, data: np.ndarray, target: np.ndarray | None) -> int:
        """Clamp ``data`` (and ``target``) and switch the layers above to follow their predictions; the rows of data."""
        self._clamped = (data, target)
        clamp = self._pad(data, self.sizes[0], "data")
        self.sim.set("layer0.x", clamp)
        self.sim.set("layer0.fx", clamp)  # nothing writes the clamped bottom layer: its drive is constant
        self.sim.set("layer0.free", 0.0)
        self._switch(self.hidden, "ff", 1.0)
        self._switch(self.hidden, "free", 1.0)
        if self.mode == "fpa":
            self._switch(self.hidden, "hold", 0.0)
        if target is not None:
            self.sim.set(f"{self.top}.x", self._pad(target, self.sizes[-1], "target"))
            self.sim.set(f"{self.top}.free", 0.0)
            self.sim.set(f"{self.top}.ff", 0.0)
        else:
            self.sim.set(f"{self.top}.ff", 1.0)
        return len(data)

    def _end_sweep(self) -> None:
        self._switch(self.hidden, "ff", 0.0)
        self.sim.set(f"{self.top}.ff", 0.0)

    def infer(self, steps: int, *, record: bool = False) -> np.ndarray | None:
        """``steps`` inference steps without learning.

        With ``record``, the energy per trial before each step, shape ``(steps, trials)``. A NaN or
        infinite value stops with a :class:`~plasticity.errors.DivergenceError` naming the first
        inference step (1-based) and layer where it appeared.
        """
        return self._relax(steps, record, swept=True)[0]

    def _relax(self, steps: int, record: bool, swept: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``steps`` inference steps after a sweep (``swept``) or a sweep one step short of one: the
        energy per trial before each step (with ``record``) and, in the second case, the top's
        prediction (all trials) that the first step computed.

        The last step of a sweep computes the rates and drives the first inference step computes
        from the same state (and then sets the values to their predictions): so a sweep of
        ``depth - 1`` steps, whose first inference step computes the prediction too (the top keeps
        it as ``prediction``), leaves every state the same and saves a step. With ``fpa`` that step
        also computes the rates it then holds, so its inference runs as two: the first step, then
        the rest with ``hold`` on.
        """
        keys = [f"layer{index}.e" for index in range(1, self.depth + 1)]
        phases = [1, steps - 1] if self.mode == "fpa" and not swept else [steps]
        energies = []
        try:
            for phase, count in enumerate(phases):
                if self.mode == "fpa":
                    self._switch(self.hidden, "hold", 0.0 if phase == 0 and not swept else 1.0)
                if record:
                    dataset = self.sim.run(count, plastic=False, record=dict.fromkeys(keys, 1))
                    energies.append(pc_energy(dataset, keys).values)
                else:
                    self.sim.advance(count, plastic=False)
        except DivergenceError:
            self._locate_divergence(steps)
            raise
        prediction = None if swept else self.sim.get(f"{self.top}.prediction")
        return (np.concatenate(energies) if record else None), prediction

    def _locate_divergence(self, steps: int) -> None:
        """Replay the inference step by step from the feedforward sweep and name the first bad step and layer.

        Inference does not change the weights, and the sweep's result depends only on them and the
        clamps, so the replay reproduces the run.
        """
        # which ends were inferred (predict frees the top, infer_latent the bottom) after the sweep
        free = {layer: self.sim.get(f"{layer}.free") for layer in ("layer0", self.top)}
        for key in self.sim.shapes:  # clear the non-finite values the failed run left behind
            owner, var = key.split(".", 1)
            if owner.startswith("layer") and var in ("x", "e", "fx", "fp"):
                self.sim.set(key, 0.0)
        self.forward(*self._clamped)
        for layer, value in free.items():
            self.sim.set(f"{layer}.free", value)
        if self.mode == "fpa":
            self._switch(self.hidden, "hold", 1.0)
        for step in range(1, steps + 1):
            try:
                self.sim.advance(1, plastic=False)
            except DivergenceError as error:
                layer = error.variable.split(".", 1)[0]
                raise DivergenceError(f"{error.variable} (inference diverged in {layer})", step, error.trial) from None

    def learn(self) -> None:
        """The weight update of the mode (after :meth:`forward` with a target, and :meth:`infer` for pc/fpa)."""
        if self.mode in ("pc", "fpa"):
            if self.mode == "fpa":
                self._switch(self.hidden, "hold", 1.0)
            self.sim.advance(1, plastic=True, stages=UPDATE_STAGES)
            return
        for distance in range(self.depth):
            layer = self.depth - distance
            names = {f"w{layer}"} | ({f"b{layer}"} if self.bias else set())
            self.sim.advance(1, plastic=names)

    def train_batch(self, data: np.ndarray, target: np.ndarray, steps: int, *, record: bool = False):
        """One training step on a batch: sweep, inference (pc, fpa: ``steps`` steps), update.

        In pc and fpa the sweep stops a step short and the first inference step completes it (the
        state, prediction and update are those of :meth:`forward`, :meth:`infer` and :meth:`learn`
        called in turn, one engine step fewer; see ``_relax``).

        Returns the feedforward prediction (before the update), the energy per trial when the
        weights change and, with ``record`` in pc/fpa mode, the mean energy before each inference
        step and at the update (``steps + 1`` values).
        """
        if len(data) != self.batch or len(target) != self.batch:
            raise ConfigError(f"a training batch needs exactly {self.batch} examples, got {len(data)}")
        _non_negative_count("steps", steps)
        if self.mode in ("zil", "bp"):
            prediction = self.forward(data, target)
            energy = self.energy()
            self.learn()
            return prediction, energy, None
        if steps:  # a sweep one step short; the first inference step predicts (see _relax)
            self._clamp(data, target)
            self.sim.set(f"{self.top}.take", 1.0)
            self.sim.advance(self.depth - 1, plastic=False, stages=SWEEP_STAGES)
            self._end_sweep()
            path, prediction = self._relax(steps, record, swept=False)
        else:
            prediction = self.forward(data, target)
            path = np.zeros((0, self.batch)) if record else None
        self.learn()
        energy = self.energy()  # the errors the update used: the state after the inference
        trajectory = None if path is None else np.append(path.mean(axis=1), energy.mean())
        return prediction, energy, trajectory

    def predict(self, data: np.ndarray, steps: int = 0) -> np.ndarray:
        """Output values for any number of examples: the feedforward prediction, then ``steps``
        inference steps with the input clamped and the output free (test-time iterative inference)."""
        _non_negative_count("steps", steps)
        data = np.asarray(data, dtype=np.float64)
        out = []
        for start in range(0, len(data), self.batch):
            chunk = data[start : start + self.batch]
            prediction = self.forward(chunk)
            if steps:
                self.sim.set(f"{self.top}.free", 1.0)
                self.infer(steps)
                prediction = self.sim.get(f"{self.top}.x")[: len(chunk)]
            out.append(prediction)
        return np.concatenate(out) if out else np.zeros((0, self.sizes[-1]))

    def infer_latent(self, observed: np.ndarray, steps: int, latent: np.ndarray | None = None) -> np.ndarray:
        """Generative use: clamp ``observed`` at the top, infer the bottom layer (the latent) and
        every hidden layer for ``steps`` steps; the inferred latent values, for any number of rows.

        Needs ``infer_bottom=True`` (so that errors reach the bottom layer). The latent starts at
        ``latent`` (default zeros) and the hidden layers at the predictions it makes. Trained with
        :meth:`train_batch` (latent or label as ``data``, observation as ``target``), the network
        generates observations from latents; inferring the latent of an observation then encodes
        or classifies it (Rao & Ballard 1999; Whittington & Bogacz 2017).
        """
        if not self.infer_bottom:
            raise ConfigError("infer_latent needs a model built with infer_bottom=True")
        _positive("steps", steps, integer=True)
        observed = np.asarray(observed, dtype=np.float64)
        rows = len(observed)
        start = np.zeros((rows, self.sizes[0])) if latent is None else np.asarray(latent, dtype=np.float64)
        if start.shape != (rows, self.sizes[0]):
            raise ConfigError(f"latent must have shape ({rows}, {self.sizes[0]}), got {start.shape}")
        out = []
        for first in range(0, rows, self.batch):
            chunk = slice(first, first + self.batch)
            self.forward(start[chunk], observed[chunk])
            self.sim.set("layer0.free", 1.0)
            try:
                self.infer(steps)
            finally:
                self.sim.set("layer0.free", 0.0)
            out.append(self.sim.get("layer0.x")[: len(start[chunk])])
        return np.concatenate(out) if out else np.zeros((0, self.sizes[0]))


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((len(labels), classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


@protocol("pc.train")
def train(
    *,
    sizes: Annotated[Sequence[int], Sizes(1, MAX_LAYER, min_length=2, max_length=MAX_LAYERS)] = (64, 128, 10),
    depth: Annotated[int | None, Maybe(Int(1, MAX_LAYERS - 1))] = None,
    activation: Annotated[str, Choice(*ACTIVATIONS)] = "tanh",
    mode: Annotated[str, Choice(*MODES)] = "pc",
    direction: Annotated[str, Choice(*DIRECTIONS)] = "discriminative",
    T: Annotated[int, Int(1, MAX_STEPS)] = 20,
    test_T: Annotated[int | None, Maybe(Int(0, MAX_STEPS))] = None,
    gamma: Annotated[float, Real(0, 10, low_open=True)] = 0.1,
    lr: Annotated[float, Real(0, 10, low_open=True)] = 0.003,
    optimizer: Annotated[str, Choice(*OPTIMIZERS)] = "adam",
    batch: Annotated[int, Int(1, MAX_BATCH)] = 32,
    epochs: Annotated[int, Int(1, MAX_EPOCHS)] = 10,
    dataset: Annotated[str, Text()] = "digits",
    test_fraction: Annotated[float, Real(0, 1, low_open=True, high_open=True)] = 0.2,
    train_examples: Annotated[int | None, Maybe(Int(1, MAX_BATCH))] = None,
    trajectory: Annotated[bool, Flag()] = True,
    alignment: Annotated[str, Choice(*ALIGNMENT_RECORDS)] = "none",
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Train a predictive coding network (or its ``bp`` baseline) to classify ``dataset``.

    Inputs are standardised with the training set's mean and standard deviation per feature;
    labels are one-hot vectors. ``train_examples`` keeps only the first that many examples of the
    (shuffled) training split, for learning from little data. ``direction``:

    * ``"discriminative"``: the input is clamped at the bottom (``sizes[0]`` features) and the
      label at the top (``sizes[-1]`` > every label); the loss is ``|label - prediction|^2 / 2``
      of the feedforward prediction. A test input is classified by the feedforward prediction,
      followed by ``test_T`` inference steps with the output free (default 0; with only the
      input clamped the feedforward state has zero energy, so inference keeps it: a check).
    * ``"generative"`` (``mode = "pc"``): the label at the bottom (``sizes[0]`` > every label)
      generates the input at the top (``sizes[-1]`` features); the loss is the reconstruction
      error ``|input - prediction|^2 / 2``. An input is classified by clamping it at the top and
      inferring the bottom layer for ``test_T`` steps (default 100) from zero (Rao & Ballard 1999).

    Records per epoch ``train_loss`` (over the epoch's batches, before each update),
    ``train_accuracy`` (discriminative: over the epoch's batches, before each update;
    generative: the training set classified after the epoch), ``test_accuracy`` (after the
    epoch) and ``energy`` (mean energy at the weight update: after ``T`` inference steps for pc
    and fpa, after the sweep for zil and bp); and ``energy_trajectory``, the mean energy of the
    last batch before each of its ``T`` inference steps and after the last (pc and fpa; NaN for
    zil and bp, which do not relax). ``trajectory = False`` leaves the trajectory out, so that
    the output has the same shape for every ``T`` and a sweep may vary ``T``.

    ``depth`` (the number of weight layers) builds a network of one width, so that a sweep may
    vary its depth: ``sizes`` is then ``[input, width, output]`` and the layers are the input,
    ``depth - 1`` hidden layers of ``width`` units and the output.

    ``alignment`` records ``target_alignment`` (Song et al. 2024): after each weight update the
    batch's inputs are swept forward again, and per example the cosine between the change of the
    feedforward output and ``target - output`` (the output before the update) is taken
    (:func:`~plasticity.analysis.alignment.target_alignment`); its mean over the batch is recorded
    per training batch (``"step"``: dimensions epoch, step) or averaged over the epoch's batches
    (``"epoch"``). Backpropagation moves the weights along the gradient, which moves the output
    along ``J J^T (target - output)`` (``J`` the output's Jacobian in the weights), not straight to
    the target; prospective configuration first infers the activity the target implies and then
    learns it, so in deep networks its output change is closer to the target's direction.
    """
    sizes = list(sizes)
    if depth is not None:
        if len(sizes) != 3:
            raise ConfigError(f"depth = {depth} needs sizes = [input, width, output] (3 numbers), got {sizes!r}")
        sizes = [sizes[0]] + [sizes[1]] * (depth - 1) + [sizes[2]]
    generative = direction == "generative"
    if generative and mode != "pc":
        raise ConfigError(f"direction='generative' needs mode='pc' (a label is inferred by pc inference), got mode={mode!r}")
    if test_T is None:
        test_T = 100 if generative else 0
    elif generative and test_T < 1:
        raise ConfigError(f"test_T must be at least 1 with direction='generative' (the label is inferred), got {test_T!r}")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    split_seed, init_seed, order_seed = root.spawn(3)
    data = load_dataset(dataset, test_fraction=test_fraction, seed=split_seed)
    if train_examples is not None:
        if train_examples > len(data.y_train):
            raise ConfigError(f"train_examples = {train_examples} but the {data.name} training split has {len(data.y_train)} examples")
        data = replace(data, x_train=data.x_train[:train_examples], y_train=data.y_train[:train_examples])
    inputs, labels = (-1, 0) if generative else (0, -1)
    names = ("sizes[-1]", "sizes[0]") if generative else ("sizes[0]", "sizes[-1]")
    if data.n_features != sizes[inputs]:
        raise ConfigError(f"{names[0]} = {sizes[inputs]} but the {data.name} inputs have {data.n_features} features")
    top = max(int(data.y_train.max()), int(data.y_test.max()))
    if top >= sizes[labels]:
        raise ConfigError(
            f"labels go up to {top} but the label layer has {sizes[labels]} units ({names[1]} must exceed every label)"
        )
    if batch > len(data.y_train):
        raise ConfigError(f"batch {batch} is larger than the {len(data.y_train)} training examples")
    model = PredictiveCodingModel(
        sizes, activation=activation, mode=mode, gamma=gamma, lr=lr, optimizer=optimizer, batch=batch,
        infer_bottom=generative, backend=backend, seed=init_seed, dtype=dtype, device=device,
    )
    mean, std = data.x_train.mean(axis=0), data.x_train.std(axis=0)
    std[std < 1e-8] = 1.0  # constant features (blank pixels) stay zero
    x_train, x_test = (data.x_train - mean) / std, (data.x_test - mean) / std
    targets = _one_hot(data.y_train, sizes[labels])

    def classify(x: np.ndarray) -> np.ndarray:
        scores = model.infer_latent(x, test_T) if generative else model.predict(x, steps=test_T)
        return scores.argmax(axis=1)

    rng = np.random.default_rng(order_seed)
    n_batches = len(data.y_train) // batch
    results = {name: np.zeros(epochs) for name in ("train_loss", "train_accuracy", "test_accuracy", "energy")}
    path_energy = np.full(T + 1, np.nan)
    aligned = np.full((epochs, n_batches), np.nan)
    for epoch in range(epochs):
        order = rng.permutation(len(data.y_train))
        loss = correct = energy = 0.0
        for index in range(n_batches):
            chosen = order[index * batch : (index + 1) * batch]
            last = epoch == epochs - 1 and index == n_batches - 1
            bottom, clamped_top = (targets[chosen], x_train[chosen]) if generative else (x_train[chosen], targets[chosen])
            prediction, batch_energy, path = model.train_batch(bottom, clamped_top, T, record=last and trajectory)
            if alignment != "none":
                aligned[epoch, index] = np.nanmean(target_alignment(prediction, model.forward(bottom), clamped_top))
            loss += 0.5 * np.sum((clamped_top - prediction) ** 2)
            if not generative:
                correct += np.sum(prediction.argmax(axis=1) == data.y_train[chosen])
            energy += batch_energy.sum()
            if path is not None:
                path_energy = path
        seen = n_batches * batch
        results["train_loss"][epoch] = loss / seen
        results["train_accuracy"][epoch] = np.mean(classify(x_train) == data.y_train) if generative else correct / seen
        results["energy"][epoch] = energy / seen
        results["test_accuracy"][epoch] = np.mean(classify(x_test) == data.y_test)
    epoch_coord = ("epoch", np.arange(1, epochs + 1), {"long_name": "epoch"})
    units = {"train_loss": "squared error / 2", "train_accuracy": "fraction", "test_accuracy": "fraction", "energy": "energy"}
    data_vars = {name: ("epoch", values, {"units": units[name]}) for name, values in results.items()}
    coords = {"epoch": epoch_coord}
    described = {"units": "cosine", "long_name": "target alignment (mean over the batch's examples)"}
    if alignment == "epoch":
        data_vars["target_alignment"] = ("epoch", aligned.mean(axis=1), described)
    elif alignment == "step":
        data_vars["target_alignment"] = (("epoch", "step"), aligned, described)
        coords["step"] = ("step", np.arange(1, n_batches + 1), {"long_name": "training batch within the epoch"})
    if trajectory:
        data_vars["energy_trajectory"] = ("inference_step", path_energy, {"units": "energy", "long_name": "energy of the last batch"})
        coords["inference_step"] = np.arange(T + 1)
    return xr.Dataset(
        data_vars,
        coords=coords,
        attrs={"model": "predictive coding", "direction": direction, "dataset": data.name, "train_examples": len(data.y_train), "test_examples": len(data.y_test)},
    )
