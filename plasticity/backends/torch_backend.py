"""The torch backend: the reference step as tensor operations on any torch device.

State lives on the device for the whole run; :meth:`TorchEngine.get` copies one array to the
host only when asked (recording). The step follows :mod:`plasticity.network` and agrees with
:mod:`plasticity.backends.numpy_backend`, the reference semantics:

* drives and feedback are batched matrix products (``baddbmm_`` over trials, ``addmm_`` for
  shared weights), accumulated in place into the summed inputs; a drive's product is kept and
  reused while neither its source nor its weights were written since (write counters per
  state key, :mod:`plasticity.backends.writes`; :attr:`TorchEngine.cached_drives` counts reuses);
* unit equations are closures generated from the expression trees
  (:mod:`plasticity.backends.torch_codegen`);
* a synapse equation whose right side expands into separable monomials
  ``coef * f(post) * g(pre) * s`` is applied in place: the terms in the target itself as one
  ``mul_`` by a per-row or per-column factor, terms in another synapse variable with
  ``addcmul_``, and all outer-product terms together as one batched GEMM (``baddbmm_``; for
  shared weights the average over trials is one ``addmm_``). No temporary the size of ``W``
  is made. Other equations (``cumsum_post``, functions of ``w``) run over blocks of rows like
  the numpy backend.

dtypes are ``float32`` (default) and ``float64`` for all state, or ``bfloat16`` /
``float16`` for the weights ``w`` only: then every other array is float32, drives and
updates run over blocks of rows converted to float32, and ``w`` is rounded once per
equation (see :func:`check_weight_dtype` for what float16 refuses).

On a CUDA device each separable update is by default one ``torch.compile`` pass that reads
and writes ``W`` once (the row scaling, traces and outer products of the eager path are three
passes); on the CPU the eager path stays the default. ``compile=`` or
``PLASTICITY_TORCH_COMPILE`` (``1``/``0``) choose either way on any device
(:func:`default_compile`). Compiling takes seconds per equation, once per process and shape.
The compiled update of ``w`` of a projection with weights per trial also computes the
projection's next drive, as the numba backend's fused pass does
(:func:`plasticity.network.fusion_mode`; :func:`_fused_update_and_drive`): the new weights times
the source as that drive will see it (the next step's input, staged on the device before the
step's kernels, else the source as it is), kept as the projection's product with the write
counts at which it holds, so the drive takes it (:attr:`TorchEngine.fused_steps`) instead of
reading ``W`` again.
The backend draws no random numbers, so it needs no generators.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from plasticity.backends.numpy_backend import per_unit
from plasticity.backends.writes import written_keys
from plasticity.backends.torch_codegen import Monomial, compile_node, compile_number, expand, side_of
from plasticity.equations import Binary, Call, Equation, Node, Reduce, walk
from plasticity.errors import BackendError, ConfigError
from plasticity.network import Network, fusion_mode

__all__ = [
    "build",
    "TorchEngine",
    "resolve_device",
    "available_devices",
    "DTYPES",
    "HALF_DTYPES",
    "check_weight_dtype",
    "block_elements",
    "COMPILE_ENV",
    "default_compile",
    "FUSED_RANK",
]

#: dtypes the torch backend runs, by name.
DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: Storage dtypes for the weights ``w`` only; all other state and all arithmetic are float32.
HALF_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


#: Environment variable that turns ``torch.compile`` of the synapse updates on ("1", "true", "yes",
#: "on") or off (any other value) on every device; unset or empty, :func:`default_compile` decides.
COMPILE_ENV = "PLASTICITY_TORCH_COMPILE"

#: Largest number of outer-product terms a compiled update folds into its single pass; more
#: (shared weights over many trials) go to a GEMM.
FUSED_RANK = 8


def _finite(array: torch.Tensor) -> torch.Tensor:
    """Whether ``array`` holds only finite values (0-d tensor), from its minimum and maximum (both
    propagate NaN), without a temporary of its size."""
    return torch.isfinite(torch.stack(torch.aminmax(array))).all()


def default_compile(device: torch.device) -> bool:
    """Whether separable synapse updates on ``device`` are compiled when neither ``compile=`` nor
    :data:`COMPILE_ENV` says: on a CUDA device where triton (``torch.compile``'s GPU code
    generator) is installed, one fused pass over the weights; elsewhere not (the CPU keeps the
    eager in-place update, which needs no compiler and no seconds of compiling per equation)."""
    return device.type == "cuda" and importlib.util.find_spec("triton") is not None


def block_elements(device: torch.device) -> int:
    """Elements of one block of synapse temporaries (trials x rows x pre) on ``device``."""
    return 1 << 20 if device.type == "cuda" else 1 << 16


def available_devices() -> list[str]:
    """Torch devices usable here: ``"cpu"``, every ``"cuda:i"`` and ``"mps"`` when present."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for ``device``: by default the first CUDA device if any, else the CPU.

    An unknown or unavailable device is a :class:`~plasticity.errors.BackendError` that lists
    the available ones; there is no silent fallback to the CPU.
    """
    available = available_devices()
    if device is None:
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise BackendError(
            f"unknown torch device {device!r}; available devices: {', '.join(available)}"
        ) from None
    if resolved.type == "cuda":
        resolved = torch.device("cuda", 0 if resolved.index is None else resolved.index)
        name = f"cuda:{resolved.index}"
    elif resolved.type in ("cpu", "mps"):
        name = resolved.type
    else:
        name = str(resolved)
    if name not in available:
        raise BackendError(f"torch device {device!r} is not available here; available devices: {', '.join(available)}")
    return resolved


# plans for synapse equations --------------------------------------------------------------------


@dataclass
class _Separable:
    """In-place application of ``target op sum(monomials)``; see the module docstring."""

    base: float  # the target's own coefficient before the monomials in it: 1 for +=, 0 for =
    scale: list[Monomial] = field(default_factory=list)  # monomials in the target (target removed)
    scale_side: str = "none"
    traces: list[tuple[Monomial, str]] = field(default_factory=list)  # (monomial without s, s)
    outer: list[Monomial] = field(default_factory=list)  # monomials without synapse variables
    multiply: list[Monomial] | None = None  # for *=: the factor (no synapse variables)


def _sides_compatible(sides: set[str]) -> str | None:
    """The one side all terms vary over (``"none"`` if none), or ``None`` if they differ."""
    sides = sides - {"none"}
    if len(sides) > 1 or "both" in sides:
        return None
    return next(iter(sides)) if sides else "none"


def _plan_separable(equation: Equation, shared: bool) -> _Separable | None:
    if any(isinstance(node, Reduce) and node.func == "cumsum_post" for node in walk(equation.expr)):
        return None  # a running sum over post units is computed row block by row block (_apply_blocks)
    terms = expand(equation.expr)
    if terms is None:
        return None
    if equation.op == "*=":
        if any(term.synapses for term in terms):
            return None
        if _sides_compatible({side_of(term.factors) for term in terms}) is not None:
            return _Separable(base=0.0, multiply=terms)
        if len(terms) == 1 and not shared:
            return _Separable(base=0.0, multiply=terms)
        return None
    sign = -1.0 if equation.op == "-=" else 1.0
    plan = _Separable(base=0.0 if equation.op == "=" else 1.0)
    scale_sides = set()
    for term in terms:
        term = Monomial(sign * term.coef, term.factors, term.synapses)
        if not term.synapses:
            plan.outer.append(term)
            continue
        if len(term.synapses) > 1:
            return None
        side = side_of(term.factors)
        if side == "both":
            return None
        rest = Monomial(term.coef, term.factors, ())
        if term.synapses[0] == equation.var:
            plan.scale.append(rest)
            scale_sides.add(side)
        else:
            plan.traces.append((rest, term.synapses[0]))
    side = _sides_compatible(scale_sides)
    if side is None:
        return None
    plan.scale_side = side
    return plan


def _plan_reduction(node: Reduce) -> list[Monomial] | None:
    """Monomials of a ``sum_pre``/``sum_post`` argument when each has at most one synapse variable."""
    if node.func == "cumsum_post":
        return None
    terms = expand(node.arg)
    if terms is None or any(len(term.synapses) > 1 for term in terms):
        return None
    return terms


def _synapse_reductions(equation: Equation) -> list[Reduce]:
    found: list[Reduce] = []
    for node in walk(equation.expr):
        if isinstance(node, Reduce) and node.axis in ("pre", "post") and node not in found:
            found.append(node)
    return found


@dataclass
class _EquationProgram:
    equation: Equation
    closure: Any
    reductions: list[Reduce]
    reduction_plans: dict[Reduce, list[Monomial] | None]
    reduction_closures: dict[Reduce, Any]
    separable: _Separable | None = None
    fused: Any = None  # the compiled single-pass update (compile=True)
    drives: bool = False  # ``fused`` also computes the projection's next drive (_fused_update_and_drive)
    factors: dict[Node, Any] = field(default_factory=dict)  # of the separable update
    reduction_factors: dict[Node, Any] = field(default_factory=dict)  # of separable reductions


# the engine -------------------------------------------------------------------------------------


class TorchEngine:
    """State and step of one network on a torch device (see :mod:`plasticity.network`)."""

    backend = "torch"

    def __init__(
        self,
        network: Network,
        state: Mapping[str, np.ndarray],
        *,
        trials: int,
        dtype: str,
        dt: float,
        device: str | torch.device | None = None,
        compile: bool = False,
    ):
        if dtype not in DTYPES and dtype not in HALF_DTYPES:
            raise ConfigError(
                f"dtype must be one of {', '.join([*DTYPES, *HALF_DTYPES])} for the torch backend, got {dtype!r}"
            )
        check_weight_dtype(network, dtype)
        self.network = network
        self.params = {name: dict(population.params) for name, population in network.populations.items()}
        self.trials = trials
        self.half = dtype in HALF_DTYPES
        self.dtype = torch.float32 if self.half else DTYPES[dtype]
        self.numpy_dtype = np.dtype("float32" if self.half else dtype)
        self.dt = float(dt)
        self.device = resolve_device(device)
        self.block = block_elements(self.device)
        self.compile = bool(compile)
        # the initial state becomes the engine's: shared on the CPU when it is already in the dtype (the
        # simulation hands it over), else one copy to the device
        self.arrays: dict[str, torch.Tensor] = {
            key: torch.from_numpy(np.ascontiguousarray(value, dtype=self.numpy_dtype)).to(self.device)
            for key, value in state.items()
        }
        if self.half:
            for name in network.projections:
                self.arrays[f"{name}.w"] = self.arrays[f"{name}.w"].to(HALF_DTYPES[dtype])
        self.provenance = {"device": str(self.device), "torch_version": torch.__version__, "torch_compile": int(self.compile)}
        self._masks = {
            name: torch.tensor(projection.mask, device=self.device)
            for name, projection in network.projections.items()
            if projection.mask is not None
        }
        self._units = {
            (name, stage): [(eq, compile_node(eq.expr, self.dtype)) for eq in equations]
            for name, population in network.populations.items()
            for stage, equations in population.stages.items()
        }
        self._rules = {
            name: [self._compile_equation(eq, projection.shared) for eq in projection.rule.parsed]
            for name, projection in network.projections.items()
            if projection.rule is not None
        }
        # projections whose compiled update of w also computes their next drive, with their
        # fusion mode (plasticity.network.fusion_mode): True when that drive is the next step's
        self._fusion: dict[str, bool] = {}
        for name, programs in self._rules.items():
            mode = fusion_mode(network, name) if self.compile and not self.half else None
            updates = [program for program in programs if program.equation.level == "synapse" and program.equation.var == "w"]
            if mode is not None and updates and updates[-1].fused is not None:
                updates[-1].fused, updates[-1].drives = torch.compile(_fused_update_and_drive, dynamic=False), True
                self._fusion[name] = mode
        # sources whose next value (the next step's input) a fused update reads
        self._fused_sources = {
            f"{network.projections[name].pre.name}.{network.projections[name].source}" for name, mode in self._fusion.items() if mode
        }
        self._prefetched: dict[str, tuple[Any, torch.Tensor]] = {}
        # drive caching (as the numba backend): write counters per state key; a projection's
        # product is reused while neither its source nor its weights were written since
        self._version = dict.fromkeys(self.arrays, 0)
        self._verified: dict[str, int] = {}  # key -> its write count when last found finite
        self._writes = written_keys(network, self.arrays)
        # per projection: the write counts of source and weights its product was made at, the
        # product, and whether a fused update made it
        self._contribution = {
            name: [None, torch.zeros((trials, projection.post.n), dtype=self.dtype, device=self.device), False]
            for name, projection in network.projections.items()
        }
        self.cached_drives = 0
        self.fused_steps = 0  # drives that took the product a fused update computed
        # projections whose drive runs in some stage, by weights key: the end-of-run check proves
        # their weights finite by computing that drive (see nonfinite)
        self._drive_of_weights = {
            f"{op.projection}.w": op.projection for op in network.program if op.kind == "drive"
        }
        # sources of drives computed by that check: an input writing the same values into one
        # at the next step keeps its write count, so the drive is reused
        self._proof_sources: set[str] = set()

    def _compile_equation(self, equation: Equation, shared: bool) -> _EquationProgram:
        reductions = _synapse_reductions(equation)
        program = _EquationProgram(
            equation,
            compile_node(equation.expr, self.dtype),
            reductions,
            {node: _plan_reduction(node) for node in reductions},
            {node: compile_node(node.arg, self.dtype) for node in reductions},
        )
        if self.half:  # half weights: everything over blocks of rows, computed in float32
            program.reduction_plans = dict.fromkeys(reductions)
        elif equation.level == "synapse":
            program.separable = _plan_separable(equation, shared)
            if self.compile and program.separable is not None and program.separable.multiply is None:
                program.fused = torch.compile(_fused_update, dynamic=False)
        for terms in program.reduction_plans.values():
            for term in terms or ():
                for factor in term.factors:
                    program.reduction_factors.setdefault(factor, compile_number(factor, self.dtype))
        plan = program.separable
        if plan is not None:
            terms = [*plan.scale, *plan.outer, *(plan.multiply or []), *(term for term, _ in plan.traces)]
            for term in terms:
                for factor in term.factors:
                    program.factors.setdefault(factor, compile_number(factor, self.dtype))
        return program

    # state access -------------------------------------------------------------------------------
    def get(self, key: str) -> np.ndarray:
        """A host copy of ``key``; half-precision weights come back as float32."""
        return self.arrays[key].detach().to("cpu", dtype=self.dtype, copy=True).numpy()

    def read_into(self, key: str, out: np.ndarray) -> None:
        """Copy ``key`` into the host array ``out`` (a record's slot; half-precision weights as float32),
        with no host copy between."""
        torch.from_numpy(out).copy_(self.arrays[key].detach())

    def set(self, key: str, value: np.ndarray) -> None:
        self.arrays[key].copy_(self._host_tensor(value))
        self._version[key] += 1
        for cache in self._contribution.values():  # a fused drive counted on the next step's inputs, not on this write
            if cache[2]:
                cache[0] = None

    def set_param(self, key: str, value: float) -> None:
        """Set population parameter ``key`` (``"pop.param"``) for every later step."""
        name, param = key.split(".", 1)
        self.params[name][param] = value

    def nonfinite(self, keys) -> str | None:
        """The first of ``keys`` holding a NaN or infinite value, or None.

        Checked on the device without a temporary the size of an array (an array is finite
        exactly when its minimum and maximum are: both reductions propagate NaN), skipping
        arrays not written since they were last found finite, with one transfer to the host.
        Weights whose projection drives its target are proven finite without scanning them by
        the drive the next step needs anyway (computed now, kept and reused by that step while
        neither source nor weights are written): with every source value finite and non-zero, a
        NaN or infinite weight makes its row's sum of products non-finite (a product with a zero
        could be skipped by the BLAS), so a finite drive from such a source proves the weights
        finite; otherwise, or when the drive is not finite, the weights are scanned. A short run
        then costs what its steps cost instead of a pass over W per call.
        """
        pending = [key for key in keys if self._verified.get(key) != self._version[key]]
        if not pending:
            return None
        proven = [key for key in pending if key in self._drive_of_weights and not self.half]
        checks = [self._drive_proof(key) if key in proven else _finite(self.arrays[key]) for key in pending]
        finite = torch.stack(checks).tolist()
        unproven = [key for key, ok in zip(pending, finite) if key in proven and not ok]
        if unproven:  # the drive could not prove them: scan the weights
            scanned = dict(zip(unproven, torch.stack([_finite(self.arrays[key]) for key in unproven]).tolist()))
            finite = [scanned.get(key, ok) for key, ok in zip(pending, finite)]
        for key, ok in zip(pending, finite):
            if not ok:
                return key
            self._verified[key] = self._version[key]
        return None

    def _drive_proof(self, weights_key: str) -> torch.Tensor:
        """True (0-d tensor) when the drive of the projection with ``weights_key`` from its source
        as it is, computed now unless kept, proves the weights finite (see :meth:`nonfinite`)."""
        name = self._drive_of_weights[weights_key]
        projection = self.network.projections[name]
        source_key = f"{projection.pre.name}.{projection.source}"
        source = self.arrays[source_key]
        cache = self._contribution[name]
        now = (self._version[source_key], self._version[weights_key])
        if cache[0] != now:
            cache[1].zero_()
            self._drive_product(name, source, cache[1])
            cache[0], cache[2] = now, False
        self._proof_sources.add(source_key)
        return torch.isfinite(cache[1]).all() & torch.isfinite(source).all() & (source != 0).all()

    def _host_tensor(self, value: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(value, dtype=self.numpy_dtype, copy=True))

    # the step -----------------------------------------------------------------------------------
    def step(
        self,
        t: float,
        inputs: Mapping[str, np.ndarray],
        plastic: frozenset[str],
        next_inputs: Mapping[str, np.ndarray] | None = None,
        stages: frozenset[str] | None = None,
    ) -> None:
        """Advance one step at time ``t``; ``plastic`` names projections whose rule runs, ``stages``
        the network stages that run (None: all)."""
        version = self._version
        for key, value in inputs.items():
            staged = self._prefetched.get(key)
            new = staged[1] if staged is not None and staged[0] is value else self._host_tensor(value)
            if key in self._proof_sources and torch.equal(self.arrays[key], new.to(self.device)):
                continue  # the same values: the drive the end-of-run check computed from them stays valid
            self.arrays[key].copy_(new)
            version[key] += 1
        self._prefetched = self._stage(next_inputs) if next_inputs else {}
        self._proof_sources.clear()
        # a step of some stages only may not write the next inputs first: its fused updates use the sources as they are
        next_staged = self._prefetched if stages is None else {}
        for operation in self.network.program:
            if stages is not None and operation.stage not in stages:
                continue
            if operation.kind == "reset":
                for population, var in operation.targets:
                    key = f"{population}.{var}"
                    self.arrays[key].zero_()
                    version[key] += 1
                continue
            if operation.kind == "drive":
                self._drive(operation.projection)
            elif operation.kind == "feedback":
                self._feedback(operation.projection)
            elif operation.kind == "units":
                self._run_units(operation.population, operation.stage, t)
                for key in self._writes[("units", operation.population, operation.stage)]:
                    version[key] += 1
                continue
            elif operation.projection in plastic:
                self._plasticity(operation.projection, t, next_staged)
            else:
                continue
            for key in self._writes[(operation.kind, operation.projection)]:
                version[key] += 1

    def _stage(self, next_inputs: Mapping[str, np.ndarray]) -> dict[str, tuple[Any, torch.Tensor]]:
        """The next step's inputs as tensors on the device, by key with the value given: on CUDA all of
        them, copied from pinned memory without waiting, queued ahead of this step's kernels (a fused
        update reads them); elsewhere only those a fused update reads."""
        if self.device.type == "cuda":
            return {key: (value, self._host_tensor(value).pin_memory().to(self.device, non_blocking=True))
                    for key, value in next_inputs.items()}
        return {key: (value, self._host_tensor(value)) for key, value in next_inputs.items() if key in self._fused_sources}

    def _drive(self, name: str) -> None:
        """Add projection ``name``'s product to its target, reusing it while neither source nor weights changed."""
        projection = self.network.projections[name]
        source_key = f"{projection.pre.name}.{projection.source}"
        target = self.arrays[f"{projection.post.name}.{projection.target}"]
        cache = self._contribution[name]
        now = (self._version[source_key], self._version[f"{name}.w"])
        if cache[0] == now:
            if cache[2]:
                self.fused_steps += 1
            else:
                self.cached_drives += 1
        else:
            cache[1].zero_()
            self._drive_product(name, self.arrays[source_key], cache[1])
            cache[0], cache[2] = now, False
        target.add_(cache[1])

    def _drive_product(self, name: str, source: torch.Tensor, target: torch.Tensor) -> None:
        projection = self.network.projections[name]
        weights = self.arrays[f"{name}.w"]
        if self.half:  # float32 products over blocks of rows of the half-precision weights
            for rows in self._row_blocks(name):
                block = (weights[rows] if projection.shared else weights[:, rows]).to(self.dtype)
                if projection.shared:
                    target[:, rows].addmm_(source, block.t())
                else:
                    target[:, rows].unsqueeze(2).baddbmm_(block, source.unsqueeze(2))
        elif projection.shared:
            target.addmm_(source, weights.t())
        else:
            target.unsqueeze(2).baddbmm_(weights, source.unsqueeze(2))

    def _feedback(self, name: str) -> None:
        projection = self.network.projections[name]
        post_var, pre_target = projection.feedback
        weights = self.arrays[f"{name}.w"]
        source = self.arrays[f"{projection.post.name}.{post_var}"]
        target = self.arrays[f"{projection.pre.name}.{pre_target}"]
        if self.half:
            for rows in self._row_blocks(name):
                block = (weights[rows] if projection.shared else weights[:, rows]).to(self.dtype)
                if projection.shared:
                    target.addmm_(source[:, rows], block)
                else:
                    target.unsqueeze(1).baddbmm_(source[:, None, rows], block)
        elif projection.shared:
            target.addmm_(source, weights)
        else:
            target.unsqueeze(1).baddbmm_(source.unsqueeze(1), weights)

    def _run_units(self, name: str, stage: str, t: float) -> None:
        population = self.network.populations[name]
        env: dict[Any, Any] = {var: self.arrays[f"{name}.{var}"] for var in population.variables}
        env.update({var: self.arrays[f"{name}.{var}"] for var in self.network.summed[name]})
        env.update(self.params[name])
        env.update(t=t, dt=self.dt)
        for equation, closure in self._units[(name, stage)]:
            _assign(env[equation.var], equation.op, closure(env))

    # plasticity ---------------------------------------------------------------------------------
    def _vector_env(self, name: str, t: float) -> dict[Any, Any]:
        """Scalars, modulators ``(trials, 1)`` and unit values ``(trials, n)`` of a projection's rule."""
        projection = self.network.projections[name]
        rule = projection.rule
        env: dict[Any, Any] = dict(rule.params)
        env.update(t=t, dt=self.dt)
        env.update({mod: self.arrays[f"{name}.{mod}"][:, None] for mod in rule.modulators})
        for population, side in ((projection.pre, "pre"), (projection.post, "post")):
            for var in rule.unit_reads(side):
                env[f"{var}_{side}"] = self.arrays[f"{population.name}.{var}"]
            for var in projection.variables:
                if var.endswith(f"_{side}"):
                    env[var] = self.arrays[f"{name}.{var}"]
        return env

    def _plasticity(self, name: str, t: float, next_staged: Mapping[str, tuple[Any, torch.Tensor]]) -> None:
        """Run projection ``name``'s rule; ``next_staged``: the next step's inputs on the device
        (:meth:`_stage`), which a fused update's next drive reads."""
        env = self._vector_env(name, t)
        for program in self._rules[name]:
            equation = program.equation
            totals = self._reductions(name, program, env)
            masked = False
            if equation.level != "synapse":
                local = dict(env)
                local.update({node: per_unit(node, value) for node, value in totals.items()})
                _assign(self.arrays[f"{name}.{equation.target}"], equation.op, program.closure(local))
            elif program.separable is not None:
                masked = self._apply_separable(name, program, env, totals, next_staged)
            else:
                self._apply_blocks(name, program, env, totals)
            if equation.level == "synapse" and name in self._masks and not masked:
                self.arrays[f"{name}.{equation.var}"].mul_(self._masks[name])

    @staticmethod
    def _factor_values(factors: dict[Node, Any], env: dict, totals: dict) -> dict[Node, Any]:
        local = dict(env)
        local.update({node: per_unit(node, value) for node, value in totals.items()})
        return {node: closure(local) for node, closure in factors.items()}

    @staticmethod
    def _product(term: Monomial, values: dict[Node, Any], sides: tuple[str, ...]) -> Any:
        """``coef`` times the term's factors that vary over one of ``sides`` (or none)."""
        result: Any = term.coef
        for factor in term.factors:
            if side_of((factor,)) in sides:
                result = result * values[factor]
        return result

    def _side_view(self, value: Any, side: str, shared: bool) -> Any:
        """A per-unit value ``(trials, n)`` (or scalar, or ``(trials, 1)``) shaped against ``W``."""
        if not isinstance(value, torch.Tensor):
            return value
        if shared:
            value = value.mean(0)
            return value[:, None] if side == "post" else value[None, :]
        return value[:, :, None] if side == "post" else value[:, None, :]

    def _full(self, value: Any, n: int) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value.expand(self.trials, n)
        return torch.full((self.trials, n), value, dtype=self.dtype, device=self.device)

    def _apply_separable(self, name: str, program: _EquationProgram, env: dict, totals: dict,
                         next_staged: Mapping[str, tuple[Any, torch.Tensor]]) -> bool:
        """Apply a separable synapse update; True when its pass also applied the projection's mask."""
        projection = self.network.projections[name]
        plan = program.separable
        shared = projection.shared
        values = self._factor_values(program.factors, env, totals)
        target = self.arrays[f"{name}.{program.equation.var}"]
        both = ("none", "post", "pre")
        if plan.multiply is not None:
            side = side_of(tuple(f for term in plan.multiply for f in term.factors))
            if side != "both":
                factor = sum(self._product(term, values, both) for term in plan.multiply)
                target.mul_(self._side_view(factor, "pre" if side == "pre" else "post", shared))
            else:
                (term,) = plan.multiply
                target.mul_(self._side_view(self._product(term, values, ("none", "post")), "post", shared))
                target.mul_(self._side_view(self._product(Monomial(1.0, term.factors, ()), values, ("pre",)), "pre", shared))
            return False
        side = "pre" if plan.scale_side == "pre" else "post"
        scale = None
        if plan.scale:
            scale = self._side_view(plan.base + sum(self._product(term, values, both) for term in plan.scale), side, shared)
        elif plan.base != 0.0:
            scale = plan.base
        traces = []
        for term, trace in plan.traces:
            trace_side = "pre" if side_of(term.factors) == "pre" else "post"
            traces.append((self.arrays[f"{name}.{trace}"], self._side_view(self._product(term, values, both), trace_side, shared)))
        left = right = None
        if plan.outer:
            post_n, pre_n = projection.post.n, projection.pre.n
            left = torch.stack([self._full(self._product(term, values, ("none", "post")), post_n) for term in plan.outer], 2)
            right = torch.stack(
                [self._full(self._product(Monomial(1.0, term.factors, ()), values, ("pre",)), pre_n) for term in plan.outer], 1
            )
            if shared:  # the average over trials of the outer products, as one (post x rank) @ (rank x pre)
                rank = len(plan.outer) * self.trials
                left = left.transpose(0, 1).reshape(post_n, rank) / self.trials
                right = right.reshape(rank, pre_n)
        if program.fused is not None and (left is None or left.shape[-1] <= FUSED_RANK):
            if program.drives:
                self._update_with_next_drive(name, program, self._tensors(scale, traces, left, right), next_staged)
                return True
            program.fused(target, *self._tensors(scale, traces, left, right))
            return False
        if scale is None:
            target.zero_()
        elif not (isinstance(scale, float) and scale == 1.0):
            target.mul_(scale)
        for source, factor in traces:
            if isinstance(factor, torch.Tensor):
                target.addcmul_(source, factor)
            else:
                target.add_(source, alpha=factor)
        if left is not None:
            if shared:
                target.addmm_(left, right)
            else:
                target.baddbmm_(left, right)
        return False

    def _update_with_next_drive(self, name: str, program: _EquationProgram, arguments: tuple,
                                next_staged: Mapping[str, tuple[Any, torch.Tensor]]) -> None:
        """The compiled update of ``w`` that also sums the new weights times the source as the next
        drive will see it (the next step's input to it, else its value now) into the projection's
        kept product, marked with the write counts at which that drive holds; the drive takes it
        while both still have them."""
        projection = self.network.projections[name]
        source_key = f"{projection.pre.name}.{projection.source}"
        source, source_version = self.arrays[source_key], self._version[source_key]
        staged = next_staged.get(source_key) if self._fusion[name] else None
        if staged is not None:
            source, source_version = staged[1].expand(source.shape).contiguous(), source_version + 1  # the next step writes it first
        cache = self._contribution[name]
        program.fused(self.arrays[f"{name}.w"], *arguments, self._masks.get(name), source, cache[1])
        cache[0], cache[2] = (source_version, self._version[f"{name}.w"] + 1), True

    def _tensors(self, scale, traces, left, right) -> tuple:
        """Arguments of a fused update, Python numbers as 0-d tensors (so a compiled kernel does not specialise on them)."""

        def tensor(value: Any) -> Any:
            return torch.tensor(value, dtype=self.dtype, device=self.device) if isinstance(value, float) else value

        return tensor(scale), [(source, tensor(factor)) for source, factor in traces], left, right

    # synapse reductions ---------------------------------------------------------------------------
    def _reductions(self, name: str, program: _EquationProgram, env: dict) -> dict[Reduce, torch.Tensor]:
        """``sum_post`` ``(trials, 1, pre)`` and ``sum_pre`` ``(trials, post, 1)`` with synapse values before the equation."""
        totals: dict[Reduce, torch.Tensor] = {}
        blocked = []
        values = self._factor_values(program.reduction_factors, env, {}) if program.reduction_factors else {}
        for node in program.reductions:
            if node.func == "cumsum_post":
                continue
            terms = program.reduction_plans[node]
            if terms is None:
                blocked.append(node)
            else:
                totals[node] = self._separable_reduction(name, node, terms, values)
        if blocked:
            totals.update(self._block_reductions(name, program, env, blocked))
        return totals

    def _separable_reduction(self, name: str, node: Reduce, terms: list[Monomial], values: dict) -> torch.Tensor:
        projection = self.network.projections[name]
        post_n, pre_n = projection.post.n, projection.pre.n
        total = torch.zeros(self.trials, post_n if node.axis == "pre" else pre_n, dtype=self.dtype, device=self.device)
        for term in terms:
            post = self._full(self._product(term, values, ("none", "post")), post_n)
            pre = self._full(self._product(Monomial(1.0, term.factors, ()), values, ("pre",)), pre_n)
            if not term.synapses:
                if node.axis == "pre":
                    total += post * pre.sum(1, keepdim=True)
                else:
                    total += pre * post.sum(1, keepdim=True)
                continue
            weights = self.arrays[f"{name}.{term.synapses[0]}"]
            if node.axis == "pre":
                product = pre @ weights.t() if projection.shared else torch.bmm(weights, pre.unsqueeze(2))[:, :, 0]
                total += post * product
            else:
                product = post @ weights if projection.shared else torch.bmm(post.unsqueeze(1), weights)[:, 0, :]
                total += pre * product
        return total[:, None, :] if node.axis == "post" else total[:, :, None]

    # blocks of rows (non-separable equations) ----------------------------------------------------
    def _row_blocks(self, name: str) -> list[slice]:
        projection = self.network.projections[name]
        rows = max(1, self.block // max(1, self.trials * projection.pre.n))
        return [slice(start, min(start + rows, projection.post.n)) for start in range(0, projection.post.n, rows)]

    def _block_env(self, name: str, rows: slice, env: dict) -> dict[Any, Any]:
        projection = self.network.projections[name]
        rule = projection.rule
        block: dict[Any, Any] = dict(rule.params)
        block.update(t=env["t"], dt=env["dt"])
        block.update({mod: self.arrays[f"{name}.{mod}"][:, None, None] for mod in rule.modulators})
        for key, value in env.items():
            if isinstance(key, str) and key.endswith("_pre"):
                block[key] = value[:, None, :]
            elif isinstance(key, str) and key.endswith("_post"):
                block[key] = value[:, rows, None]
        for var in projection.synapse_variables:
            array = self.arrays[f"{name}.{var}"]
            view = array[None, rows, :] if projection.shared else array[:, rows, :]
            block[var] = view.to(self.dtype)
        return block

    def _block_reductions(self, name: str, program: _EquationProgram, env: dict, nodes: list[Reduce]) -> dict[Reduce, torch.Tensor]:
        projection = self.network.projections[name]
        totals = {}
        for node in nodes:
            shape = (self.trials, 1, projection.pre.n) if node.axis == "post" else (self.trials, projection.post.n, 1)
            totals[node] = torch.zeros(shape, dtype=self.dtype, device=self.device)
        for rows in self._row_blocks(name):
            block = self._block_env(name, rows, env)
            shape = (self.trials, rows.stop - rows.start, projection.pre.n)
            for node in nodes:
                value = _broadcast(program.reduction_closures[node](block), shape, self.dtype, self.device)
                if node.axis == "post":
                    totals[node] += value.sum(1, keepdim=True)
                else:
                    totals[node][:, rows, :] = value.sum(2, keepdim=True)
        return totals

    def _apply_blocks(self, name: str, program: _EquationProgram, env: dict, totals: dict) -> None:
        projection = self.network.projections[name]
        equation = program.equation
        running = [node for node in program.reductions if node.func == "cumsum_post"]
        carry = {node: torch.zeros(self.trials, 1, projection.pre.n, dtype=self.dtype, device=self.device) for node in running}
        target = self.arrays[f"{name}.{equation.var}"]
        for rows in self._row_blocks(name):
            block = self._block_env(name, rows, env)
            shape = (self.trials, rows.stop - rows.start, projection.pre.n)
            block.update({node: value if node.axis == "post" else value[:, rows, :] for node, value in totals.items()})
            for node in running:
                terms = _broadcast(program.reduction_closures[node](block), shape, self.dtype, self.device)
                block[node] = torch.cumsum(terms, 1) + carry[node]
                carry[node] += terms.sum(1, keepdim=True)
            value = program.closure(block)
            rows_view = target[rows, :] if projection.shared else target[:, rows, :]
            if projection.shared:
                value = _broadcast(value, shape, self.dtype, self.device).mean(0)
            _assign(rows_view, equation.op, value)


def check_weight_dtype(network: Network, dtype: str) -> None:
    """Raise ConfigError if a rule of ``network`` cannot keep its weights in ``dtype``.

    bfloat16 has float32's exponent range, so every rule can store its weights in it (with 8
    bits of mantissa: an update below 1/256 of a weight is lost). float16 reaches only 65504
    and loses precision below 6e-5, so a rule whose equation for ``w`` takes ``exp`` of a
    varying value, divides by one or raises to a varying power (results that can leave that
    range) cannot use it.
    """
    if dtype != "float16":
        return
    for name, projection in network.projections.items():
        for equation in projection.rule.parsed if projection.rule is not None else ():
            if equation.var != "w":
                continue
            for node in walk(equation.expr):
                if _leaves_float16(node):
                    raise ConfigError(
                        f"dtype 'float16' cannot hold the weights of projection {name!r}: in {equation.text!r} "
                        f"{_describe(node)} can leave float16's range (6e-5 to 65504); use dtype 'bfloat16', "
                        "'float32' or 'float64'"
                    )


def _leaves_float16(node: Node) -> bool:
    if isinstance(node, Call):
        return node.func == "exp" and bool(node.args[0].domain)
    if isinstance(node, Binary) and node.op in ("/", "**"):
        return bool(node.right.domain)
    return False


def _describe(node: Node) -> str:
    return "exp() of a varying value" if isinstance(node, Call) else {"/": "a division by a varying value", "**": "a varying power"}[node.op]


def _fused_update(target: torch.Tensor, scale: Any, traces: list, left: Any, right: Any) -> None:
    """``target = target * scale + sum(source * factor) + left @ right`` written as one elementwise
    expression, so that ``torch.compile`` makes it a single read-and-write pass over ``target``."""
    value = _update_value(target, scale, traces, left, right)
    if value is None:
        target.zero_()
    else:
        target.copy_(value)


def _fused_update_and_drive(target: torch.Tensor, scale: Any, traces: list, left: Any, right: Any, mask: Any,
                            source: torch.Tensor, drive: torch.Tensor) -> None:
    """:func:`_fused_update` (times ``mask`` when given) that also writes the next drive of the new
    weights, ``drive[t, i] = sum_j target[t, i, j] * source[t, j]``: on CUDA ``torch.compile``
    puts the row sums into the update's kernel, which then reads and writes each weight once."""
    value = _update_value(target, scale, traces, left, right)
    if value is None:
        value = torch.zeros_like(target)
    if mask is not None:
        value = value * mask
    target.copy_(value)
    drive.copy_((value * source[:, None, :]).sum(-1))


def _update_value(target: torch.Tensor, scale: Any, traces: list, left: Any, right: Any) -> Any:
    """The new value of a separable update as one elementwise expression, or None for zero."""
    value = None if scale is None else target * scale
    for source, factor in traces:
        value = source * factor if value is None else value + source * factor
    if left is not None:
        for k in range(left.shape[-1]):
            term = left[:, :, k : k + 1] * right[:, k : k + 1, :] if left.dim() == 3 else left[:, k : k + 1] * right[k : k + 1, :]
            value = term if value is None else value + term
    return value


def _broadcast(value: Any, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(dtype).expand(shape)
    return torch.full(shape, float(value), dtype=dtype, device=device)


def _assign(target: torch.Tensor, op: str, value: Any) -> None:
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
        value = value.to(target.dtype)
    if op == "=":
        if isinstance(value, torch.Tensor):
            target.copy_(value)
        else:
            target.fill_(value)
    elif op == "+=":
        target.add_(value)
    elif op == "-=":
        target.sub_(value)
    else:
        target.mul_(value)


def build(
    network: Network,
    state: Mapping[str, np.ndarray],
    *,
    trials: int,
    dtype: str,
    dt: float,
    device: str | torch.device | None = None,
    compile: bool | None = None,
) -> TorchEngine:
    """A torch engine for ``network`` starting from ``state``, on ``device`` (see :func:`resolve_device`).

    ``compile=True`` compiles each separable synapse update with ``torch.compile`` into one pass
    over the weights (a few seconds to a minute of compilation per equation, worth it for long
    runs of large projections); ``None`` (default) reads the environment variable
    ``PLASTICITY_TORCH_COMPILE`` ("1" on, "0" off), so that simulations, protocols and TOML
    experiments can use it unchanged, and when that is unset takes :func:`default_compile` of the
    device (on for CUDA, off for the CPU).
    """
    if compile is None:
        setting = os.environ.get(COMPILE_ENV, "").strip().lower()
        compile = setting in ("1", "true", "yes", "on") if setting else default_compile(resolve_device(device))
    return TorchEngine(network, state, trials=trials, dtype=dtype, dt=dt, device=device, compile=compile)
