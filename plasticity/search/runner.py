"""Run a rule search: enumerate, probe, evaluate through the sweep machinery, rank.

A search file names a task, a grammar (:mod:`plasticity.search.grammar`), the task's
parameters and the search's own settings::

    task = "association"          # a fast task (association, pca, reward) or any protocol
    seed = 0

    [grammar]
    terms = ["x_pre", "y_post", "target_post", "w"]
    constants = [1]
    max_operations = 2

    [params]                      # the task's parameters
    n = 16

    [search]
    learning_rates = [0.02]

The candidates are split into batches of ``search.batch``; each batch is one point of a sweep
(:func:`plasticity.sweep.run_sweep`: a local Dask cluster by default, any cluster with
``scheduler``, resumable), which evaluates its candidates at every learning rate. On a fast
task (:mod:`plasticity.search.tasks`) a batch is one call of the generic kernel
(:mod:`plasticity.search.kernel`): a short probe of ``probe_steps`` steps first, and candidates
that diverge in it are dropped; on a protocol each candidate is one run of the protocol with the
candidate as its ``rule`` (a run that diverges stops with an error and counts as diverged).
Every candidate sees the same data: the search's seed, whichever point evaluates it.

The ranked table (:func:`read_ranking`) is written into the store's ``ranking`` group: per
candidate its equations, the best learning rate, the score's mean over trials with a 95%
t-interval, the capacity, the operations per synapse per step (``rule.cost()``), whether it is
a strict 3Q rule, its update polynomial, and whether it diverged.
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError, DivergenceError, PlasticityError
from plasticity.search.grammar import Candidate, Enumeration, Grammar, enumerate_rules
from plasticity.search.kernel import run_linear_layer
from plasticity.search.polynomial import Polynomial
from plasticity.search.tasks import FAST_TASKS, FastTask

__all__ = ["SearchConfig", "SearchResult", "load_search", "search", "evaluate_batch", "read_ranking", "format_ranking",
           "TOP_LEVEL_KEYS", "SEARCH_KEYS"]

TOP_LEVEL_KEYS = ("task", "seed", "backend", "dtype", "device", "grammar", "params", "search")
SEARCH_KEYS = ("learning_rates", "batch", "probe_steps", "bound", "score", "capacity", "rule_parameter", "top",
               "definitions")
#: The protocol that evaluates one batch of candidates inside a sweep.
BATCH_PROTOCOL = "plasticity.search.runner:evaluate_batch"
RANKING_GROUP = "ranking"
#: Where the ranking is written before it is renamed to RANKING_GROUP, and where an older one waits meanwhile.
RANKING_PARTIAL = "ranking_partial"
RANKING_PREVIOUS = "ranking_previous"


@dataclass(frozen=True)
class SearchConfig:
    """A validated search: the task and its parameters, the grammar, the runtime settings and
    the search's own settings (``SEARCH_KEYS``; see :func:`load_search`)."""

    task: str
    grammar: Grammar
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    backend: str = "numba"
    dtype: str = "float32"
    device: str | None = None
    learning_rates: tuple[float, ...] = (0.01,)
    batch: int = 64
    probe_steps: int = 100
    bound: float = 1e4
    score: str = "score"
    capacity: str = "capacity"
    rule_parameter: str = "rule"
    top: int = 20
    definitions: dict[str, str] = field(default_factory=dict)

    @property
    def fast_task(self) -> FastTask | None:
        return FAST_TASKS.get(self.task)

    def as_dict(self) -> dict[str, Any]:
        """The search as the plain table a search file holds (round-trips through from_dict)."""
        document: dict[str, Any] = {"task": self.task, "seed": self.seed, "backend": self.backend, "dtype": self.dtype}
        if self.device is not None:
            document["device"] = self.device
        document["grammar"] = self.grammar.as_table()
        document["params"] = dict(self.params)
        document["search"] = {
            "learning_rates": list(self.learning_rates), "batch": self.batch, "probe_steps": self.probe_steps,
            "bound": self.bound, "top": self.top, "definitions": dict(self.definitions),
        }
        if self.fast_task is None:
            document["search"].update(score=self.score, capacity=self.capacity, rule_parameter=self.rule_parameter)
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], *, source: str = "search") -> "SearchConfig":
        """Validate a search table (every key checked before any work)."""
        if not isinstance(document, Mapping):
            raise ConfigError(f"{source}: a search must be a table; got {document!r}")
        unknown = sorted(set(document) - set(TOP_LEVEL_KEYS))
        if unknown:
            raise ConfigError(f"{source}: unknown key {', '.join(map(repr, unknown))}; valid keys: {', '.join(TOP_LEVEL_KEYS)}")
        task = document.get("task")
        if not isinstance(task, str) or not task:
            raise ConfigError(
                f"{source}: 'task' must name a task: one of {', '.join(FAST_TASKS)} (the generic kernel) or a protocol; "
                f"got {task!r}"
            )
        if "grammar" not in document:
            raise ConfigError(f"{source}: a [grammar] table is missing (terms, constants, operations, max_operations, max_equations)")
        grammar = Grammar.from_table(document["grammar"])
        params = document.get("params", {})
        if not isinstance(params, Mapping):
            raise ConfigError(f"{source}: [params] must be a table of the task's parameters; got {params!r}")
        settings = document.get("search", {})
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{source}: [search] must be a table with keys {', '.join(SEARCH_KEYS)}; got {settings!r}")
        unknown = sorted(set(settings) - set(SEARCH_KEYS))
        if unknown:
            raise ConfigError(f"{source}: search has unknown key {', '.join(map(repr, unknown))}; valid keys: {', '.join(SEARCH_KEYS)}")
        runtime = _runtime(document, source)
        config = cls(task=task, grammar=grammar, params=dict(params), **runtime, **_settings(settings, source))
        if config.fast_task is not None:
            for_protocols = sorted(set(settings) & {"score", "capacity", "rule_parameter"})
            if for_protocols:
                raise ConfigError(
                    f"{source}: search.{for_protocols[0]} names a protocol's variable or parameter; task {task!r} "
                    f"runs on the generic kernel and has its own score and capacity: leave it out"
                )
        config.check_task()
        return config

    def check_task(self) -> None:
        """The task exists, accepts the parameters and offers every term of the grammar."""
        fast = self.fast_task
        if fast is not None:
            checked = fast.check(self.params)
            missing = [term for term in self.grammar.terms if term not in fast.terms]
            if missing:
                raise ConfigError(
                    f"task {self.task!r} offers the terms {', '.join(fast.terms)}; the grammar names "
                    f"{', '.join(map(repr, missing))}"
                )
            steps = checked.get("steps")
            if steps is not None and self.probe_steps > steps:
                raise ConfigError(f"search.probe_steps ({self.probe_steps}) must be at most the task's steps ({steps})")
            return
        from plasticity.protocols import get_protocol

        try:
            protocol = get_protocol(self.task)
        except ConfigError as error:
            raise ConfigError(
                f"unknown task {self.task!r}: not a fast task ({', '.join(FAST_TASKS)}) and not a protocol ({error})"
            ) from None
        if self.rule_parameter not in protocol.defaults:
            raise ConfigError(
                f"protocol {self.task!r} has no parameter {self.rule_parameter!r} to take the candidate rule; "
                f"its parameters: {', '.join(sorted(protocol.defaults))} (set search.rule_parameter)"
            )
        if self.rule_parameter in self.params:
            raise ConfigError(f"params.{self.rule_parameter} is the candidate rule; the search sets it, remove it from [params]")
        protocol.validate(self.params)


def _runtime(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    from plasticity.backends import BACKENDS

    seed = document.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{source}: seed must be a non-negative integer; got {seed!r}")
    backend = document.get("backend", "numba")
    if backend not in BACKENDS:
        raise ConfigError(f"{source}: backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    dtype = document.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"{source}: dtype must be 'float32' or 'float64'; got {dtype!r}")
    device = document.get("device")
    if device is not None and not isinstance(device, str):
        raise ConfigError(f"{source}: device must be a string such as 'cpu' or 'cuda:0'; got {device!r}")
    return {"seed": seed, "backend": backend, "dtype": dtype, "device": device}


def _settings(settings: Mapping[str, Any], source: str) -> dict[str, Any]:
    from plasticity.params import Int, Real, Text

    checked: dict[str, Any] = {}
    rates = settings.get("learning_rates", [0.01])
    if isinstance(rates, (int, float)) and not isinstance(rates, bool):
        rates = [rates]
    if not isinstance(rates, list) or not rates or len(rates) > 16:
        raise ConfigError(f"{source}: search.learning_rates must be a list of 1 to 16 positive numbers; got {rates!r}")
    checked["learning_rates"] = tuple(Real(0, 1e3, low_open=True)("search.learning_rates", rate) for rate in rates)
    specs = {"batch": Int(1, 4096), "probe_steps": Int(0, 1_000_000), "bound": Real(0, 1e30, low_open=True),
             "score": Text(), "capacity": Text(), "rule_parameter": Text(), "top": Int(1, 10_000)}
    for key, spec in specs.items():
        if key in settings:
            checked[key] = spec(f"search.{key}", settings[key])
    if "definitions" in settings:
        definitions = settings["definitions"]
        if not isinstance(definitions, Mapping) or not all(isinstance(v, str) for v in definitions.values()):
            raise ConfigError(f"{source}: search.definitions must be a table of term = \"expression\"; got {definitions!r}")
        _definitions(definitions, "search.definitions")
        checked["definitions"] = dict(definitions)
    return checked


def _definitions(table: Mapping[str, str], what: str) -> dict[str, Polynomial]:
    """``{term: expression}`` as polynomials; an expression that is not one is an error naming it."""
    from plasticity.equations import SynapseContext, parse_equations

    polynomials = {}
    for name, text in table.items():
        (equation,) = parse_equations([f"{name} = {text}"], SynapseContext())
        polynomials[name] = Polynomial.from_node(equation.expr, f"{what}.{name}")
    return polynomials


def load_search(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SearchConfig:
    """Read and validate the search file ``path``; ``overrides`` are ``KEY=VALUE`` with dotted
    keys (``params.n=32``, ``grammar.max_operations=3``), values in TOML."""
    from plasticity.experiment import _parse_value

    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"search file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error
    for assignment in overrides:
        key, sep, raw = assignment.partition("=")
        parts = key.strip().split(".")
        if not sep or not parts[0]:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. params.n=32), got {assignment!r}")
        if parts[0] not in TOP_LEVEL_KEYS:
            raise ConfigError(f"--set {assignment!r}: unknown key {parts[0]!r}; valid keys: {', '.join(TOP_LEVEL_KEYS)}")
        table = document
        for part in parts[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {assignment!r}: {part!r} is not a table")
        table[parts[-1]] = _parse_value(raw.strip(), assignment)
    return SearchConfig.from_dict(document, source=str(path))


# ----------------------------------------------------------------------------- enumeration


def enumerate_candidates(config: SearchConfig, *, force: bool = False) -> Enumeration:
    """The deduplicated candidates of the search (cached per process: every batch of a worker
    reads the same enumeration)."""
    document = config.as_dict()
    key = {"task": config.task, "grammar": document["grammar"], "definitions": document["search"]["definitions"]}
    return _enumerate(json.dumps(key, sort_keys=True), force)


@functools.lru_cache(maxsize=4)
def _enumerate(key_json: str, force: bool) -> Enumeration:
    key = json.loads(key_json)
    definitions = FAST_TASKS[key["task"]].definition_polynomials() if key["task"] in FAST_TASKS else {}
    definitions.update(_definitions(key["definitions"], "search.definitions"))
    return enumerate_rules(Grammar.from_table(key["grammar"]), definitions=definitions, force=force)


# ----------------------------------------------------------------------------- evaluation


def _interval(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over the last axis and its 95% t-interval (NaN bounds with one sample)."""
    from scipy.special import stdtrit  # the t quantile; scipy.stats takes seconds to import

    count = scores.shape[-1]
    mean = scores.mean(axis=-1)
    if count < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = stdtrit(count - 1, 0.975) * scores.std(axis=-1, ddof=1) / math.sqrt(count)
    return mean, mean - half, mean + half


def _evaluate_fast(config: SearchConfig, task: FastTask, candidates: list[Candidate]) -> dict[str, np.ndarray]:
    problem = task.problem(config.params, config.seed)
    rates = config.learning_rates
    polynomials = [c.polynomial for c in candidates for _ in rates]
    etas = [rate for _ in candidates for rate in rates]
    _, probed = run_linear_layer(problem.data, polynomials, etas, steps=config.probe_steps, bound=config.bound)
    dropped = (probed >= 0).any(axis=1)
    alive = np.flatnonzero(~dropped)
    trials = problem.data.trials
    scores = np.full((len(polynomials), trials), np.nan)
    capacity = np.full((len(polynomials), trials), np.nan)
    diverged = dropped.copy()
    if alive.size:
        weights, at = run_linear_layer(
            problem.data, [polynomials[i] for i in alive], [etas[i] for i in alive], bound=config.bound
        )
        finite = at < 0
        scores[alive] = np.where(finite, problem.score(weights), np.nan)
        capacity[alive] = np.where(finite, problem.capacity(weights), np.nan)
        diverged[alive] = ~finite.all(axis=1)
    shape = (len(candidates), len(rates))
    mean, low, high = _interval(scores)
    return {
        "score": mean.reshape(shape), "score_low": low.reshape(shape), "score_high": high.reshape(shape),
        "capacity": capacity.mean(axis=1).reshape(shape),
        "probe_diverged": dropped.reshape(shape), "diverged": diverged.reshape(shape),
    }


def _per_trial(variable: xr.DataArray) -> np.ndarray:
    other = [dim for dim in variable.dims if dim != "trial"]
    values = variable.mean(other) if other else variable
    return np.atleast_1d(np.asarray(values, dtype=float))


def _evaluate_protocol(config: SearchConfig, candidates: list[Candidate]) -> dict[str, np.ndarray]:
    from plasticity.protocols import run_protocol

    shape = (len(candidates), len(config.learning_rates))
    out = {name: np.full(shape, np.nan) for name in ("score", "score_low", "score_high", "capacity")}
    out["probe_diverged"] = np.zeros(shape, bool)
    out["diverged"] = np.zeros(shape, bool)
    for c, candidate in enumerate(candidates):
        for r, rate in enumerate(config.learning_rates):
            params = {**config.params, config.rule_parameter: candidate.rule(rate)}
            try:
                dataset = run_protocol(config.task, params, backend=config.backend, seed=config.seed,
                                       dtype=config.dtype, device=config.device)
            except DivergenceError:
                out["diverged"][c, r] = True
                continue
            if config.score not in dataset:
                raise ConfigError(
                    f"protocol {config.task!r} returned no variable {config.score!r} to rank by (search.score); "
                    f"its variables: {', '.join(sorted(map(str, dataset.data_vars)))}"
                )
            scores = _per_trial(dataset[config.score])
            if not np.isfinite(scores).all():
                out["diverged"][c, r] = True
                continue
            mean, low, high = _interval(scores[None])
            out["score"][c, r], out["score_low"][c, r], out["score_high"][c, r] = mean[0], low[0], high[0]
            if config.capacity in dataset:
                out["capacity"][c, r] = float(np.nanmean(_per_trial(dataset[config.capacity])))
    return out


def evaluate_batch(
    *,
    search: dict = {},  # noqa: B006 (a protocol's parameters need defaults; the sweep always passes it)
    batch: int = 0,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Evaluate batch ``batch`` of the search ``search`` (the table of a search file): the
    protocol each point of a search's sweep runs. The point's own seed is not used: every
    candidate sees the data of the search's seed."""
    config = SearchConfig.from_dict(search)
    enumeration = enumerate_candidates(config, force=True)
    candidates = enumeration.candidates[batch * config.batch : (batch + 1) * config.batch]
    fast = config.fast_task
    values = _evaluate_fast(config, fast, candidates) if fast is not None else _evaluate_protocol(config, candidates)
    slots = config.batch
    index = np.full(slots, -1, np.int64)
    index[: len(candidates)] = [c.index for c in candidates]
    data = {"candidate": (("slot",), index, {"description": "index of the candidate in the enumeration; -1: empty slot"})}
    for name, value in values.items():
        padded = np.full((slots, value.shape[1]), False if value.dtype == bool else np.nan, dtype=value.dtype)
        padded[: len(candidates)] = value
        data[name] = (("slot", "rate"), padded)
    return xr.Dataset(
        {name: xr.Variable(*spec) for name, spec in data.items()},
        coords={"rate": np.asarray(config.learning_rates), "slot": np.arange(slots)},
    )


# ----------------------------------------------------------------------------- the search


@dataclass
class SearchResult:
    """What :func:`search` did: the counts, the ranked table and the evaluation rate."""

    path: Path
    yielded: int
    candidates: int
    probe_dropped: int
    evaluated: int
    diverged: int
    elapsed_s: float
    ranking: xr.Dataset
    failed_batches: list[str]

    @property
    def rate(self) -> float:
        """Candidates evaluated per second (the sweep's wall time, start-up included)."""
        return self.candidates / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def __str__(self) -> str:
        lines = [
            f"{self.path}: {self.yielded:,} rules yielded, {self.candidates:,} after deduplication, "
            f"{self.probe_dropped:,} dropped by the probe (diverged), {self.evaluated:,} evaluated, "
            f"{self.diverged:,} of them diverged later; {self.rate:.1f} candidates/s ({self.elapsed_s:.1f} s)",
        ]
        lines += [f"  failed batch: {failure}" for failure in self.failed_batches]
        return "\n".join(lines)


def search(
    config: SearchConfig | Mapping[str, Any] | str | Path,
    output: str | Path,
    *,
    resume: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> SearchResult:
    """Run the search ``config`` (a :class:`SearchConfig`, its table, or a search file) into
    the Zarr store ``output`` and write the ranked table into it (see the module docstring).

    ``workers``, ``scheduler`` and ``resume`` are those of :func:`plasticity.sweep.run_sweep`;
    ``force`` enumerates a grammar that yields more rules than its limit. Local workers are
    spawned processes: a script that calls this must do so under ``if __name__ == "__main__":``.
    """
    from plasticity.experiment import Experiment
    from plasticity.sweep import run_sweep

    if isinstance(config, (str, Path)):
        config = load_search(config)
    elif not isinstance(config, SearchConfig):
        config = SearchConfig.from_dict(config)
    enumeration = enumerate_candidates(config, force=force)
    if progress:
        print(enumeration.summary())
    if config.fast_task is None:
        _check_protocol_candidate(config, enumeration)
    batches = math.ceil(len(enumeration.candidates) / config.batch)
    experiment = Experiment(
        protocol=BATCH_PROTOCOL, params={"search": config.as_dict()}, backend=config.backend, seed=config.seed,
        dtype=config.dtype, device=config.device, axes={"batch": tuple(range(batches))}, has_sweep=True,
    )
    summary = run_sweep(experiment, output, resume=resume, workers=workers, scheduler=scheduler, progress=progress)
    ranking = _rank(config, enumeration, Path(output))
    _write_ranking(ranking, Path(output))
    dropped = int(ranking["probe_diverged"].sum())
    return SearchResult(
        path=Path(output), yielded=enumeration.total_yielded, candidates=len(enumeration.candidates),
        probe_dropped=dropped, evaluated=int(ranking["evaluated"].sum()) - dropped,
        diverged=int(ranking["diverged"].sum()) - dropped, elapsed_s=summary.elapsed_s, ranking=ranking,
        failed_batches=[f"{label}: {error}" for _, label, error in summary.failed],
    )


def _check_protocol_candidate(config: SearchConfig, enumeration: Enumeration) -> None:
    """Build the protocol's network for a rule reading every term of the grammar once, so that a
    term the protocol does not offer is an error before the sweep starts."""
    from plasticity.protocols import run_protocol
    from plasticity.rule import Rule

    terms = " + ".join(config.grammar.terms)
    rule = Rule([f"w += eta * 0 * ({terms})"], params={"eta": 0.0}, modulators=config.grammar.modulators, name="probe")
    try:
        dataset = run_protocol(config.task, {**config.params, config.rule_parameter: rule}, backend="numpy", seed=config.seed)
    except DivergenceError:
        return
    except PlasticityError as error:
        raise ConfigError(f"protocol {config.task!r} cannot run a rule of the grammar's terms {list(config.grammar.terms)}: {error}") from None
    if config.score not in dataset:
        raise ConfigError(
            f"protocol {config.task!r} returns no variable {config.score!r} to rank by (search.score); "
            f"its variables: {', '.join(sorted(map(str, dataset.data_vars)))}"
        )


def _rank(config: SearchConfig, enumeration: Enumeration, path: Path) -> xr.Dataset:
    store = xr.open_zarr(path)
    if "candidate" not in store:  # no batch finished: every candidate is reported as not run
        store = store.assign(candidate=(("batch", "repeat", "slot"), np.full(store["done"].shape + (1,), -1)))
        for name in ("score", "score_low", "score_high", "capacity", "probe_diverged", "diverged"):
            store[name] = (("batch", "repeat", "slot", "rate"), np.full(store["done"].shape + (1, len(config.learning_rates)), np.nan))
    done = store["done"].values.reshape(-1)
    index = store["candidate"].values.reshape(-1, store.sizes["slot"])
    fields = ("score", "score_low", "score_high", "capacity", "probe_diverged", "diverged")
    values = {name: store[name].values.reshape(-1, store.sizes["slot"], store.sizes["rate"]) for name in fields}
    count = len(enumeration.candidates)
    per = {name: np.full((count, store.sizes["rate"]), np.nan) for name in fields}
    evaluated = np.zeros(count, bool)
    for point in np.flatnonzero(done):
        slots = index[point] >= 0
        for name in fields:
            per[name][index[point][slots]] = values[name][point][slots]
        evaluated[index[point][slots]] = True
    mean = np.where(np.isnan(per["score"]), -np.inf, per["score"])
    best = np.argmax(mean, axis=1)  # the best learning rate of each candidate
    pick = {name: np.take_along_axis(per[name], best[:, None], 1)[:, 0] for name in fields}
    every_cost = [candidate.rule(1.0).cost() for candidate in enumeration.candidates]
    operations = [cost.adds + cost.multiplies for cost in every_cost]
    # best score first; equal scores: the cheaper rule first
    order = sorted(range(count), key=lambda c: (
        not evaluated[c], np.isnan(pick["score"][c]), -np.nan_to_num(pick["score"][c]), operations[c], c))
    candidates = [enumeration.candidates[c] for c in order]
    costs = [every_cost[c] for c in order]
    rates = np.asarray(config.learning_rates)
    return xr.Dataset(
        {
            "equations": ("rank", np.array([c.text() for c in candidates], dtype=str)),
            "polynomial": ("rank", np.array([str(c.polynomial) for c in candidates], dtype=str)),
            "candidate": ("rank", np.array([c.index for c in candidates], np.int64)),
            "learning_rate": ("rank", rates[best[order]] if count else rates[:0]),
            "score": ("rank", pick["score"][order], {"long_name": f"{config.score} (mean over trials)"}),
            "score_low": ("rank", pick["score_low"][order], {"long_name": "95% t-interval, lower end"}),
            "score_high": ("rank", pick["score_high"][order], {"long_name": "95% t-interval, upper end"}),
            "capacity": ("rank", pick["capacity"][order]),
            "operations": ("rank", np.array([c.adds + c.multiplies for c in costs], np.int64),
                           {"long_name": "adds and multiplies per synapse per step (rule.cost())"}),
            "adds": ("rank", np.array([c.adds for c in costs], np.int64)),
            "multiplies": ("rank", np.array([c.multiplies for c in costs], np.int64)),
            "strict_3q": ("rank", np.array([c.strict for c in candidates], bool)),
            "equation_count": ("rank", np.array([len(c.equations) for c in candidates], np.int64)),
            "probe_diverged": ("rank", np.nan_to_num(pick["probe_diverged"][order]).astype(bool)),
            "diverged": ("rank", np.nan_to_num(pick["diverged"][order]).astype(bool)),
            "evaluated": ("rank", evaluated[order]),
        },
        coords={"rank": np.arange(1, count + 1)},
        attrs={"task": config.task, "search": json.dumps(config.as_dict()), "yielded": enumeration.total_yielded,
               "candidates": count},
    )


def _write_ranking(ranking: xr.Dataset, path: Path) -> None:
    """Write ``ranking`` into the store's ``ranking`` group atomically: a search killed while the
    table is written must not leave a half-written group that reads as a finished ranking (a
    missing chunk reads as its fill value, silently). The table is written into the group
    ``ranking_partial`` and renamed to ``ranking`` (one ``rename`` of a directory, atomic on
    POSIX) only once complete; a ranking there before (a resumed search) is moved aside first
    and deleted last, so a kill at any point leaves either the old complete table, or no table
    (``read_ranking`` says so, and ``--resume`` writes it), never a partial one."""
    import shutil

    import zarr

    from plasticity.storage import ZARR_FORMAT

    final, partial, previous = (path / name for name in (RANKING_GROUP, RANKING_PARTIAL, RANKING_PREVIOUS))
    shutil.rmtree(partial, ignore_errors=True)
    ranking.to_zarr(path, group=RANKING_PARTIAL, mode="w", consolidated=False, zarr_format=ZARR_FORMAT)
    if final.exists():
        shutil.rmtree(previous, ignore_errors=True)
        final.rename(previous)
    partial.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
    zarr.consolidate_metadata(path, zarr_format=ZARR_FORMAT)


def read_ranking(path: str | Path) -> xr.Dataset:
    """The ranked table of the search store ``path`` (only a completely written one: see
    :func:`_write_ranking`)."""
    path = Path(path)
    if not (path / RANKING_GROUP).exists():
        raise ConfigError(
            f"{str(path)!r} holds no ranking; it is not the store of a finished plasticity search "
            "(an interrupted one: finish it with --resume)"
        )
    return xr.open_zarr(path, group=RANKING_GROUP, consolidated=False).load()


def format_ranking(ranking: xr.Dataset, top: int = 20) -> str:
    """The first ``top`` rows of a ranked table as text."""
    lines = [f"{'rank':>4}  {'score':>9}  {'95% interval':>21}  {'capacity':>8}  {'ops':>3}  {'3Q':>3}  {'eta':>7}  equations"]
    for row in range(min(top, ranking.sizes["rank"])):
        item = ranking.isel(rank=row)
        score = float(item["score"])
        interval = f"[{float(item['score_low']):.4f}, {float(item['score_high']):.4f}]"
        status = "diverged" if bool(item["diverged"]) else "" if bool(item["evaluated"]) else "not run"
        lines.append(
            f"{int(item['rank']):>4}  {score:>9.4f}  {interval:>21}  {float(item['capacity']):>8.3f}  "
            f"{int(item['operations']):>3}  {'yes' if bool(item['strict_3q']) else 'no':>3}  "
            f"{float(item['learning_rate']):>7.3g}  {item['equations'].item()}" + (f"  ({status})" if status else "")
        )
    return "\n".join(lines)
