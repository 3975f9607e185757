"""Simulations: run a network on a backend, apply inputs, record into an xarray.Dataset."""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from plasticity.backends import DEFAULT_BACKEND, check_backend, get_backend
from plasticity.errors import ConfigError, DivergenceError
from plasticity.init import all_finite
from plasticity.network import Network
from plasticity.params import Int, Real, check, check_seed
from plasticity.provenance import base_attrs, now_iso, to_json
from plasticity.state import initial_state, modulator_keys, state_shapes

__all__ = ["Simulation", "InputSource", "DTYPES", "HALF_DTYPES", "CHECK_EVERY"]

DTYPES = ("float32", "float64")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: Most trials of one simulation (every state array has a leading axis of trials).
MAX_TRIALS = 1 << 24
#: Weight dtypes of the torch backend (other state float32); recorded as float32.
HALF_DTYPES = ("bfloat16", "float16")

#: Steps per call of an engine's compiled run: between calls Ctrl-C stops a long run with the
#: state and ``steps_done`` consistent.
COMPILED_CHUNK = 256
#: A run checks the whole state for NaN and infinite values after every compiled chunk and, when
#: stepping from Python, after every step that is a multiple of this (and at its end), so a
#: divergence stops it at most this many steps after the first non-finite value.
CHECK_EVERY = COMPILED_CHUNK
#: Steps per chunk of a presented data set (:meth:`Simulation.present`): each chunk one compiled
#: call where the engine can, the state checked after it. Longer than :data:`COMPILED_CHUNK`
#: because an epoch of a small network is short: the perceptron capacity benchmark (50 trials x 200
#: synapses) spent about a millisecond in Python around each chunk.
PRESENTED_CHUNK = 4 * COMPILED_CHUNK

#: An input: an array ``(steps, trials, n)``, ``(steps, n)`` (the same for every trial) or
#: ``(n,)`` (constant); a leading axis of length 1 repeats over steps. Modulators have no unit
#: axis: ``(steps, trials)``, ``(steps,)`` or a number. Or a callable ``f(step, rng) -> array``
#: or an iterator of arrays, one per step.
InputSource = np.ndarray | Callable[[int, np.random.Generator], Any] | Iterable[Any]


class Simulation:
    """A network with state on a backend, advanced step by step.

    State arrays (``"pop.var"``, ``"proj.var"``) and population parameters (``"pop.param"``, a
    number: a gain, a temperature, a switch between phases) are read with :meth:`get` and changed
    between runs with :meth:`set`; :attr:`params` holds the parameters' current values.

    Parameters
    ----------
    network:
        The :class:`~plasticity.network.Network` to run.
    trials:
        Independent trials run together as one batch (the leading axis of all state), at most
        :data:`MAX_TRIALS`.
    backend:
        ``"numba"`` (default), ``"numpy"`` or ``"torch"``.
    seed:
        Integer or ``numpy.random.SeedSequence``; initial values and input generators draw
        from it, so a run is the same wherever it runs.
    dtype:
        ``"float32"`` (default) or ``"float64"`` for all state; with ``backend="torch"`` also
        ``"bfloat16"`` or ``"float16"``: the weights in that dtype, the rest float32.
    device:
        Torch device (``backend="torch"`` only).
    dt:
        Time step, a finite number > 0; equations read it as ``dt`` and the time as ``t``.

    Every argument is checked with the specs of :mod:`plasticity.params`, as protocol
    parameters are: a wrong type, NaN or a value out of range is a ConfigError naming it.
    """

    def __init__(
        self,
        network: Network,
        *,
        trials: int = 1,
        backend: str = DEFAULT_BACKEND,
        seed: int | np.random.SeedSequence = 0,
        dtype: str = "float32",
        device: str | None = None,
        dt: float = 1.0,
    ):
        if not isinstance(network, Network):
            raise ConfigError(f"network must be a Network, got {type(network).__name__}")
        trials = check("trials", trials, Int(1, MAX_TRIALS))
        if dtype not in DTYPES and not (dtype in HALF_DTYPES and backend == "torch"):
            raise ConfigError(
                f"dtype must be one of {', '.join(DTYPES)} (or, with backend='torch', {', '.join(HALF_DTYPES)} "
                f"for the weights), got {dtype!r}"
            )
        dt = check("dt", dt, Real(0, low_open=True))
        check_backend(backend, device)
        seed = check_seed(seed)
        self.network = network
        self.trials = int(trials)
        self.backend = backend
        self.dtype = dtype
        self.device = device
        self.dt = float(dt)
        self.seed = seed
        root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        init_sequence, self._input_sequence = root.spawn(2)
        self._runs = 0  # runs so far: run k draws its inputs from child k of _input_sequence
        self.shapes = state_shapes(network, self.trials)
        self._params = {f"{name}.{param}": value for name, population in network.populations.items()
                        for param, value in population.params.items()}
        state = initial_state(network, self.trials, np.random.default_rng(init_sequence), self._record_dtype)
        self.engine = get_backend(backend).build(
            network, state, trials=self.trials, dtype=dtype, dt=self.dt, device=device
        )
        self.steps_done = 0
        self._finite_at = 0  # the last step at which the whole state was found finite (initial values must be)

    @property
    def _record_dtype(self) -> str:
        return "float32" if self.dtype in HALF_DTYPES else self.dtype

    @property
    def t(self) -> float:
        """Simulated time at the end of the last step."""
        return self.steps_done * self.dt

    @property
    def params(self) -> dict[str, float]:
        """The current value of every population parameter, by ``"pop.param"``."""
        return dict(self._params)

    def get(self, key: str) -> np.ndarray:
        """A copy of state array ``key`` (``"pop.var"`` or ``"proj.var"``) as numpy, or the value of
        population parameter ``key`` as a 0-d array."""
        if key in self._params:
            return np.array(self._params[key])
        self._check_key(key)
        return self.engine.get(key)

    def set(self, key: str, value: Any) -> None:
        """Set state array ``key`` (broadcast to its shape), or population parameter ``key`` to a
        finite number (every later step of every trial uses it)."""
        if key in self._params:
            self._set_param(key, value)
            return
        self._check_key(key)
        array = value if isinstance(value, np.ndarray) and value.dtype in _FLOATS else np.asarray(value, dtype=np.float64)
        shape = self.shapes[key]
        if array.shape != shape:
            self._check_broadcast(key, array, shape)
        # the engine broadcasts on assignment: a broadcast view (zero strides) copied in was slower
        # than a number, and a protocol sets its switches many times per batch
        self.engine.set(key, array)

    def _set_param(self, key: str, value: Any) -> None:
        number = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
        if isinstance(number, bool) or not isinstance(number, (int, float, np.integer, np.floating)) or not np.isfinite(number):
            raise ConfigError(f"parameter {key!r} takes a finite number, got {value!r}")
        self.engine.set_param(key, float(number))
        self._params[key] = float(number)

    def _check_key(self, key: str) -> None:
        if key not in self.shapes:
            if key in self._params:
                raise ConfigError(f"{key!r} is a parameter, not a state variable; valid variables: {', '.join(self.shapes)}")
            raise ConfigError(
                f"unknown variable {key!r}; valid variables: {', '.join(self.shapes)}; "
                f"valid parameters: {', '.join(self._params) or '(none)'}"
            )

    def _broadcast(self, key: str, value: Any) -> np.ndarray:
        array = np.asarray(value, dtype=np.float64)
        self._check_broadcast(key, array, self.shapes[key])
        return np.broadcast_to(array, self.shapes[key])

    @staticmethod
    def _check_broadcast(key: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
        try:
            fits = np.broadcast_shapes(array.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ConfigError(f"value for {key!r} has shape {array.shape}, which does not broadcast to {shape}")

    # inputs ---------------------------------------------------------------------------------
    def _input_keys(self) -> set[str]:
        keys = set(modulator_keys(self.network))
        for name, population in self.network.populations.items():
            keys.update(f"{name}.{var}" for var in population.variables)
        return keys

    def _input_readers(self, inputs: Mapping[str, InputSource], steps: int) -> dict[str, Callable[[int], np.ndarray]]:
        child = self._next_input_sequence()
        if not inputs:
            return {}
        valid = self._input_keys()
        readers = {}
        generators = child.spawn(len(inputs))
        for (key, source), sequence in zip(sorted(inputs.items()), generators):
            if key not in valid:
                raise ConfigError(
                    f"cannot drive {key!r} with an input; valid input variables: {', '.join(sorted(valid))}"
                )
            readers[key] = self._reader(key, source, steps, np.random.default_rng(sequence))
        return readers

    def _reader(self, key: str, source: InputSource, steps: int, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
        shape = self.shapes[key]
        if isinstance(source, (np.ndarray, list, tuple, float, int)):
            array = np.asarray(source, dtype=np.float64)
            units = len(shape) - 1
            if array.ndim == units:  # constant, the same for every trial
                array = array[None, None]
            elif array.ndim == units + 1:  # (steps, ...), the same for every trial
                array = array[:, None]
            elif array.ndim != units + 2:
                raise ConfigError(
                    f"input {key!r} has shape {array.shape}; expected (steps, trials, *units), "
                    f"(steps, *units) or (*units), with units {shape[1:]}"
                )
            if array.shape[0] not in (1, steps):
                raise ConfigError(f"input {key!r} has {array.shape[0]} steps, but the run has {steps}")
            try:
                np.broadcast_to(array[0], shape)
            except ValueError:
                raise ConfigError(
                    f"input {key!r} has shape {array.shape}; each step must broadcast to {shape}"
                ) from None
            if array.shape[0] == 1:
                return lambda step: array[0]
            return lambda step: array[step]
        if callable(source):
            return lambda step: self._broadcast(key, source(step, rng))
        if isinstance(source, (Iterable, Iterator)):
            iterator = iter(source)

            def read(step: int) -> np.ndarray:
                try:
                    return self._broadcast(key, next(iterator))
                except StopIteration:
                    raise ConfigError(f"input {key!r} ran out of values at step {step}") from None

            return read
        raise ConfigError(f"input {key!r} must be an array, a callable (step, rng) -> array or an iterator")

    # running ---------------------------------------------------------------------------------
    def run(
        self,
        steps: int,
        *,
        inputs: Mapping[str, InputSource] | None = None,
        record: Mapping[str, int] | None = None,
        plastic: bool | Iterable[str] = True,
        stages: Iterable[str] | None = None,
    ) -> xr.Dataset:
        """Advance ``steps`` steps and return what ``record`` asked for.

        ``record`` maps a variable (``"pop.var"``, ``"proj.w"``) to a recording interval: the
        value after every ``k``-th step. ``plastic`` is ``True``, ``False`` or the names of the
        projections whose rules run. ``stages`` (default all) names the network stages each step
        runs, in the network's order; the others are skipped, and what they would write keeps
        its value (a feedforward sweep without errors and feedback, say). A NaN or infinite
        recorded value, or any in the state (checked every :data:`CHECK_EVERY` steps and at the
        end), raises :class:`~plasticity.errors.DivergenceError` naming the variable, the trial,
        the step it was found at and the last step the state was found finite: the run stops at
        most :data:`CHECK_EVERY` steps after the first non-finite value.
        """
        start = now_iso()
        stage_set = self._stage_set(stages)
        buffers, record, first, seconds = self._execute(steps, inputs, record, plastic, stage_set)
        dataset = self._dataset(buffers, record, first, start, seconds)
        if stage_set is not None:
            dataset.attrs["stages"] = to_json([stage for stage in self.network.stages if stage in stage_set])
        return dataset

    def advance(
        self,
        steps: int,
        *,
        inputs: Mapping[str, InputSource] | None = None,
        plastic: bool | Iterable[str] = True,
        stages: Iterable[str] | None = None,
    ) -> None:
        """Advance ``steps`` steps like :meth:`run`, recording nothing and returning no dataset.

        For protocols that orchestrate many short phases (clamp, relax, learn), where building a
        dataset per phase would cost more than the steps. The same checks apply: a NaN or
        infinite value in the state, checked every :data:`CHECK_EVERY` steps and at the end,
        raises :class:`~plasticity.errors.DivergenceError`.
        """
        self._execute(steps, inputs, None, plastic, self._stage_set(stages))

    def present(
        self,
        data: Mapping[str, np.ndarray],
        *,
        order: str = "fixed",
        plastic: bool | Iterable[str] = True,
        learning: np.ndarray | None = None,
        count_updates: bool = False,
        stages: Iterable[str] | None = None,
    ) -> np.ndarray | None:
        """Present a stored data set once (an epoch): every item one step, and return the updates counted.

        ``data`` maps input variables (``"pop.var"``) to arrays of items, ``(trials, items, *units)``
        (each trial its own data set) or ``(items, *units)`` (the same for every trial); every key
        has the same number of items, and item ``k`` of every key is shown at the same step.
        ``order`` is ``"fixed"`` (the stored order) or ``"shuffled"``: each trial sees its items in
        its own random order, drawn from this call's input seed (the run's seed and the number of
        runs before it), so a presentation is the same wherever it runs.

        ``learning`` (a boolean per trial, default all) leaves trials out: a trial marked ``False``
        ends the epoch in the state it began it, its populations' state and the synapse and rule
        variables of the plastic projections put back (a trial that met its criterion learns
        nothing more and its units show nothing); the compiled path skips it where it can (see
        below). Projections with weights shared by the trials cannot stop per trial.

        With ``count_updates`` the result is, per trial, the number of steps after which a weight
        ``w`` of a plastic projection of that trial differed from its value before the step (the
        updates made: mistakes for the perceptron rule), 0 for trials not learning; else ``None``.
        Counting compares the weights after every step (a copy per step).

        An engine with ``run_presented`` (numba) runs the epoch as compiled chunks of up to
        :data:`PRESENTED_CHUNK` steps, each step copying its items from the data first, once its
        program is compiled or found in the disk cache, trial after trial and skipping the trials
        left out where every array a step writes is indexed by trial; others, and the first chunks
        before that, step from Python. Both give the same state and counts.
        """
        keys = sorted(data)
        if not keys:
            raise ConfigError("data must map at least one input variable to its items")
        if order not in ("fixed", "shuffled"):
            raise ConfigError(f"order must be 'fixed' or 'shuffled', got {order!r}")
        plastic_set = self._plastic_set(plastic)
        valid = self._input_keys()
        items, arrays = None, {}
        for key in keys:
            if key not in valid:
                raise ConfigError(f"cannot present data to {key!r}; valid input variables: {', '.join(sorted(valid))}")
            array = np.asarray(data[key])
            if array.dtype not in (np.float32, np.float64):
                array = array.astype(np.float64)
            units = self.shapes[key][1:]
            if array.shape[array.ndim - len(units):] != units or array.ndim < len(units) + 1:
                raise ConfigError(f"data for {key!r} has shape {array.shape}; its items must have shape {units}")
            if array.ndim == len(units) + 1:
                array = np.broadcast_to(array, (self.trials, *array.shape))
            elif array.ndim != len(units) + 2 or array.shape[0] != self.trials:
                raise ConfigError(
                    f"data for {key!r} has shape {array.shape}; expected (trials={self.trials}, items, *{units}) or (items, *{units})"
                )
            if items is None:
                items = array.shape[1]
            elif array.shape[1] != items:
                raise ConfigError(f"data for {key!r} has {array.shape[1]} items, but data for {keys[0]!r} has {items}")
            arrays[key] = array
        if not items:
            raise ConfigError("data holds no items to present")
        learning = self._learning_mask(learning, plastic_set)
        inputs_seed = self._next_input_sequence()
        if order == "shuffled":
            rng = np.random.default_rng(inputs_seed)
            picks = np.argsort(rng.random((self.trials, items)), axis=1)
        else:
            picks = np.broadcast_to(np.arange(items), (self.trials, items))
        trial = np.arange(self.trials)
        kept = self._trial_state(plastic_set, ~learning) if not learning.all() else {}
        counts = np.zeros(self.trials, dtype=np.int64)
        counted = _counted_weights(self.network, plastic_set) if count_updates else ()
        stage_set = self._stage_set(stages)
        compiled = getattr(self.engine, "run_presented", None)  # optional: chunks of steps in one call each
        for start in range(0, items, PRESENTED_CHUNK):
            chunk = picks[:, start : start + PRESENTED_CHUNK]  # (trials, steps): the item each trial shows
            length = chunk.shape[1]
            done = compiled(self.steps_done, arrays, chunk, plastic_set, stage_set, counted, learning) if compiled is not None else None
            if done is not None:
                self.steps_done += length
                counts += done
            else:
                counter = _UpdateCounter(self, counted) if count_updates else None
                readers = {key: (lambda step, a=value, c=chunk: a[trial, c[:, step]]) for key, value in arrays.items()}
                self._step_by_step(length, readers, {}, {}, plastic_set, stage_set, counter)
                if counter is not None:
                    counts += counter.counts
            self._check_state()
        for key, (stopped, values) in kept.items():
            current = self.engine.get(key)
            current[stopped] = values
            self.engine.set(key, current)
        if not count_updates:
            return None
        return np.where(learning, counts, 0)

    def _next_input_sequence(self) -> np.random.SeedSequence:
        """The input seed of the next run (child ``run`` of the input sequence, as spawn() makes it)."""
        run, self._runs = self._runs, self._runs + 1
        parent = self._input_sequence
        return np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, run), pool_size=parent.pool_size)

    def _learning_mask(self, learning: np.ndarray | None, plastic_set: frozenset[str]) -> np.ndarray:
        if learning is None:
            return np.ones(self.trials, dtype=bool)
        mask = np.asarray(learning)
        if mask.shape != (self.trials,) or mask.dtype != bool:
            raise ConfigError(f"learning must be a boolean array of one value per trial ({self.trials}), got {learning!r}")
        if not mask.all():
            shared = sorted(name for name in plastic_set if self.network.projections[name].shared)
            if shared:
                raise ConfigError(f"learning cannot stop per trial on projections with shared weights: {', '.join(shared)}")
        return mask

    def _trial_state(self, plastic_set: frozenset[str], stopped: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The state of the populations and the synapse and rule variables of the plastic projections
        in the ``stopped`` trials."""
        kept = {}
        for key in self.shapes:
            owner = key.split(".", 1)[0]
            if owner in self.network.populations or (
                owner in plastic_set and len(self.shapes[key]) >= 2 and self.shapes[key][0] == self.trials
            ):
                kept[key] = (stopped, self.engine.get(key)[stopped])
        return kept

    def _stage_set(self, stages: Iterable[str] | None) -> frozenset[str] | None:
        """The stages a run runs, or None for all of them."""
        if stages is None:
            return None
        chosen = frozenset([stages] if isinstance(stages, str) else stages)
        valid = self.network.stages
        if not chosen or not chosen <= set(valid):
            raise ConfigError(f"stages must name one or more of the network's stages ({', '.join(valid)}), got {stages!r}")
        return None if chosen == set(valid) else chosen

    def _execute(self, steps, inputs, record, plastic, stages=None):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ConfigError(f"steps must be a non-negative integer, got {steps!r}")
        record = dict(record or {})
        for key, every in record.items():
            self._check_key(key)
            if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
                raise ConfigError(f"record[{key!r}] must be a positive integer interval, got {every!r}")
        plastic_set = self._plastic_set(plastic)
        readers = self._input_readers(dict(inputs or {}), steps)
        first = self.steps_done
        buffers = {
            key: np.empty((self._record_count(first, steps, every), *self.shapes[key]), dtype=self._record_dtype)
            for key, every in record.items()
        }
        clock = _time.perf_counter()
        compiled = getattr(self.engine, "run_compiled", None)  # optional: a run without inputs or recording in one call
        if not readers and not record and compiled is not None:
            while steps:  # in chunks; a chunk the engine does not compile goes step by step
                chunk = min(steps, COMPILED_CHUNK)
                if compiled(self.steps_done, chunk, plastic_set, stages):
                    self.steps_done += chunk
                else:
                    self._step_by_step(chunk, readers, record, buffers, plastic_set, stages)
                steps -= chunk
                if steps:  # the last chunk is checked below
                    self._check_state()
        else:
            self._step_by_step(steps, readers, record, buffers, plastic_set, stages)
        self._check_state()
        return buffers, record, first, _time.perf_counter() - clock

    def _check_state(self) -> None:
        """Raise DivergenceError if any state array holds NaN or inf. Checked in place (copying
        every weight per short phase cost more than the phase); the numba and torch engines skip
        arrays not written since they were last found finite."""
        bad = self.engine.nonfinite(self.shapes)
        if bad is not None:
            self._check_finite(bad, self.engine.get(bad), self.steps_done)
        self._finite_at = self.steps_done

    def _step_by_step(self, steps, readers, record, buffers, plastic_set, stages, after_step=None) -> None:
        filled = dict.fromkeys(record, 0)
        upcoming = {key: read(0) for key, read in readers.items()} if steps else {}
        for step in range(steps):
            current = upcoming
            upcoming = {key: read(step + 1) for key, read in readers.items()} if step + 1 < steps else None
            self.engine.step((self.steps_done + 1) * self.dt, current, plastic_set, upcoming, stages)
            self.steps_done += 1
            if after_step is not None:
                after_step()
            for key, every in record.items():
                if self.steps_done % every == 0:
                    value = buffers[key][filled[key]]
                    self.engine.read_into(key, value)  # straight into the record: no copy of the state between
                    previous = self.steps_done - every  # recorded finite then, if recorded in this run
                    self._check_finite(key, value, self.steps_done, previous if filled[key] else None)
                    filled[key] += 1
            if self.steps_done % CHECK_EVERY == 0 and step + 1 < steps:  # the last step is checked by the caller
                self._check_state()

    def _plastic_set(self, plastic: bool | Iterable[str]) -> frozenset[str]:
        names = frozenset(self.network.projections)
        if plastic is True:
            return names
        if plastic is False:
            return frozenset()
        chosen = frozenset(plastic)
        unknown = chosen - names
        if unknown:
            raise ConfigError(
                f"plastic names {', '.join(sorted(unknown))}, not projections; valid: {', '.join(sorted(names))}"
            )
        return chosen

    @staticmethod
    def _record_count(first: int, steps: int, every: int) -> int:
        return (first + steps) // every - first // every

    def _check_finite(self, key: str, value: np.ndarray, step: int, finite_at: int | None = None) -> None:
        """Raise DivergenceError if ``value`` of ``key`` at ``step`` holds NaN or inf; ``finite_at``
        is a later step than the last full check at which ``key`` was seen finite, if any."""
        if all_finite(value):
            return
        first_bad = np.argwhere(~np.isfinite(value))[0]
        last_finite = max(self._finite_at, finite_at if finite_at is not None else -1)
        raise DivergenceError(key, step, None if self._is_shared(key) else int(first_bad[0]), last_finite)

    def _is_shared(self, key: str) -> bool:
        owner, var = key.split(".", 1)
        projection = self.network.projections.get(owner)
        return projection is not None and projection.shared and var in projection.synapse_variables

    # the dataset ------------------------------------------------------------------------------
    def _dims(self, key: str, time_dim: str) -> tuple[str, ...]:
        owner, var = key.split(".", 1)
        if owner in self.network.populations:
            return (time_dim, "trial", f"{owner}_unit")
        projection = self.network.projections[owner]
        if var.endswith("_post"):
            return (time_dim, "trial", f"{owner}_post")
        if var.endswith("_pre"):
            return (time_dim, "trial", f"{owner}_pre")
        if var not in projection.synapse_variables:
            return (time_dim, "trial")
        if projection.shared:
            return (time_dim, f"{owner}_post", f"{owner}_pre")
        return (time_dim, "trial", f"{owner}_post", f"{owner}_pre")

    def _dataset(self, buffers, record, first, start, seconds) -> xr.Dataset:
        intervals = sorted(set(record.values()))
        time_dims = {every: "time" if every == intervals[0] else f"time_{every}" for every in intervals}
        data_vars, coords = {}, {"trial": np.arange(self.trials)}
        for every, dim in time_dims.items():
            steps = np.arange((first // every + 1) * every, self.steps_done + 1, every)
            units = "dt" if self.dt != 1.0 else "steps"
            coords[dim] = (dim, steps * self.dt, {"long_name": "time", "units": units})
            coords["step" if dim == "time" else f"step_{every}"] = (dim, steps)
        for key, every in record.items():
            dims = self._dims(key, time_dims[every])
            data_vars[key] = (dims, buffers[key])
        for name, population in self.network.populations.items():
            coords[f"{name}_unit"] = np.arange(population.n)
        for name, projection in self.network.projections.items():
            coords[f"{name}_post"] = np.arange(projection.post.n)
            coords[f"{name}_pre"] = np.arange(projection.pre.n)
        dataset = xr.Dataset(data_vars, coords=coords)
        used = set(dataset.dims)
        dataset = dataset.drop_vars([name for name in list(dataset.coords) if dataset[name].dims and dataset[name].dims[0] not in used])
        dataset.attrs.update(base_attrs(backend=self.backend, dtype=self.dtype, seed=self.seed))
        dataset.attrs.update(
            equations=to_json(self.network.equations()),
            config=to_json({"network": self.network.config(), "trials": self.trials, "dt": self.dt, "record": record}),
            population_params=to_json(self._params),
            start_time=start,
            end_time=now_iso(),
            wall_time_s=seconds,
        )
        extra = getattr(self.engine, "provenance", None)
        if extra:
            dataset.attrs.update(extra)
        return dataset


def _counted_weights(network: Network, projections: frozenset[str]) -> tuple[str, ...]:
    """The weight keys whose updates :meth:`Simulation.present` counts: those of ``projections``,
    which must keep weights per trial."""
    shared = sorted(name for name in projections if network.projections[name].shared)
    if shared:
        raise ConfigError(f"updates are counted per trial; projections with shared weights cannot be: {', '.join(shared)}")
    return tuple(f"{name}.w" for name in sorted(projections))


class _UpdateCounter:
    """Counts, per trial, the steps after which one of the weights ``keys`` changed."""

    def __init__(self, simulation: Simulation, keys: tuple[str, ...]):
        self.simulation = simulation
        self.keys = keys
        self.before = {key: simulation.engine.get(key) for key in self.keys}
        self.counts = np.zeros(simulation.trials, dtype=np.int64)

    def __call__(self) -> None:
        changed = np.zeros(self.simulation.trials, dtype=bool)
        for key in self.keys:
            after = self.simulation.engine.get(key)
            changed |= (after != self.before[key]).reshape(len(after), -1).any(axis=1)
            self.before[key] = after
        self.counts += changed
