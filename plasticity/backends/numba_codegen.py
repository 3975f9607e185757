"""Generate numba kernels from the expression trees, cache them on disk, import them.

Each population stage and each projection's plasticity becomes one ``@numba.njit``
function written as Python source text from the equations' trees (never a copy per
rule). The source of a whole network is written to ``<cache>/k<hash>.py``, where the
hash is that of the source text, and imported with :mod:`importlib`; the kernels carry
``cache=True``, so numba stores the machine code beside the module and a second
process running the same model loads it instead of compiling.

What the kernels compute is defined by :mod:`plasticity.backends.numpy_backend`;
here is only how:

* work is hoisted by domain: terms that vary over post units only are computed once
  per row, terms over pre units only once per pre unit into an O(N) buffer, scalars
  once per row; only terms over both run in the inner loop;
* element arithmetic runs in the state's dtype; sums (reductions, the fused drive)
  accumulate in float64 (inner loops run over blocks of 1024 columns through views
  indexed from 0, which LLVM vectorises; a block's sum is the dtype's vector partial
  sums, added into the float64 total once per block);
* a population stage is one kernel; consecutive equations without reductions share one
  loop over the units (each still sees the previous ones' results: they are elementwise);
* one pass per synapse equation: ``sum_pre`` of a synapse term is a loop over the row just
  before the row is updated (it is in cache), ``sum_post`` a column pass before the
  equation, ``cumsum_post`` a running carry that makes rows go in order (the pass is
  then parallel over trials and chunks of columns, or over trials only when a row
  needs all its columns);
* the pass that writes ``w`` last can accumulate ``sum_j w_new[i, j] * xn[j]``, the
  drive of the next step (``fuse=True``), so a step reads and writes each weight once;
* shared weights (a minibatch): the update averaged over trials, in one loop over
  (row, trial, column) into a float64 row total, or, for increments that are sums of separable terms
  ``scalar * f(post) * g(pre) * w**k`` (``k`` 0 or 1), as row/column scalings and the
  BLAS product of two factor matrices (post x trials, trials x pre) added to ``w`` by
  the BLAS call itself (:func:`~plasticity.backends.blas.gemm` with ``beta = 1``; see
  :func:`separable_terms`); a factor that is one unit variable is its state array (the post
  one transposed, a view), its scalars folded into the product's alpha;
* a population kernel can also run the equations of several stages in one loop: the
  compiled step programs of :mod:`plasticity.backends.numba_program` fuse stages so.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from plasticity.equations import Binary, Call, Compare, Const, Equation, Name, Node, Reduce, Unary, walk
from plasticity.equations.functions import FUNCTIONS
from plasticity.equations.separable import expand
from plasticity.network import Network

__all__ = [
    "FASTMATH",
    "PARALLEL_MIN_ELEMENTS",
    "COLUMN_CHUNK",
    "cache_dir",
    "load_module",
    "NetworkSource",
    "generate",
    "separable_terms",
    "SeparableUpdate",
]

#: LLVM fast-math flags of every kernel: no ``nnan``/``ninf``, so NaN and Inf propagate
#: and divergence is detected.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
#: Kernels over fewer elements than this run on one thread (thread start-up costs more: on 2
#: cores, a pass of a few operations per element over 16k float32 elements ran 13 us on one
#: thread, 11 us on two).
PARALLEL_MIN_ELEMENTS = 1 << 14
#: Columns per task of a column pass (``sum_post``).
COLUMN_CHUNK = 512
#: Trials per tile of the transposing loop that writes a separable update's post factors.
TRANSPOSE_TILE = 16

_POST = frozenset({"post"})
_PRE = frozenset({"pre"})


def cache_dir() -> Path:
    """Directory of generated kernel modules: ``$PLASTICITY_CACHE_DIR`` or ``~/.cache/plasticity/kernels``."""
    configured = os.environ.get("PLASTICITY_CACHE_DIR")
    path = Path(configured) if configured else Path.home() / ".cache" / "plasticity" / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


_HELPER_FILES = ("blas.py", "numba_kernels.py")


@functools.cache
def _helpers_digest() -> str:
    """Digest of the compiled helpers generated modules call. numba's disk cache of a function
    does not notice a change in the functions it calls from other files, so the helpers' digest
    is part of every generated module's text (and file name)."""
    here = Path(__file__).resolve().parent
    text = b"".join((here / name).read_bytes() for name in _HELPER_FILES)
    return hashlib.sha256(text).hexdigest()[:24]


def load_module(source: str) -> ModuleType:
    """Import ``source`` from ``<cache>/k<sha256>.py``, writing the file atomically if new (the
    text starts with a line naming the digest of the helpers it calls)."""
    source = f"# helpers {_helpers_digest()}\n{source}"
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    name = f"plasticity_kernels_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    directory = cache_dir()
    path = directory / f"k{digest}.py"
    if not path.exists():
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".k{digest}", suffix=".tmp")
        with os.fdopen(handle, "w") as stream:
            stream.write(source)
        os.replace(temporary, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# ----------------------------------------------------------------------------------------
# source text helpers
# ----------------------------------------------------------------------------------------


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def indent(self) -> "_Lines":
        self.depth += 1
        return self

    def dedent(self) -> None:
        self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _decorator(parallel: bool) -> str:
    flags = ", ".join(repr(flag) for flag in sorted(FASTMATH))
    return (
        f"@numba.njit(cache=True, parallel={parallel}, fastmath={{{flags}}}, "
        "error_model='numpy', nogil=True)"
    )


def _kernel_source(function: str, arguments: list[str], body: str, parallel: bool) -> str:
    """The source of kernel ``function(*arguments)`` whose lines after the ``def`` are ``body``.

    A threaded kernel (``parallel``) is the body compiled twice, ``<function>_threaded`` and
    ``<function>_serial``, and ``function`` calling one of them by
    :func:`~plasticity.backends.blas.threads` at each call: the serial loop on one thread (no
    threading-layer start-up) and in a forked child, which numba's ``omp`` layer would terminate.
    """
    signature = ", ".join(arguments)
    if not parallel:
        return f"{_decorator(False)}\ndef {function}({signature}):\n{body}"
    return (
        f"{_decorator(True)}\ndef {function}_threaded({signature}):\n{body}\n\n"
        f"{_decorator(False)}\ndef {function}_serial({signature}):\n{body}\n\n"
        f"@numba.njit(cache=True, nogil=True)\ndef {function}({signature}):\n"
        f"    if threads() > 1:\n        {function}_threaded({signature})\n"
        f"    else:\n        {function}_serial({signature})\n"
    )


_COMPARE = {"<", "<=", ">", ">=", "==", "!="}


class _Emitter:
    """Turns tree nodes into Python expressions; ``lookup`` supplies names, reductions, hoists."""

    def __init__(self, scalar: str):
        self.scalar = scalar  # "np.float32" or "np.float64"
        self.tanh = "tanh32" if scalar == "np.float32" else "np.tanh"
        self.constants: dict[float, str] = {}

    def const(self, value: float) -> str:
        if value not in self.constants:
            self.constants[value] = f"k{len(self.constants)}"
        return self.constants[value]

    def constant_lines(self) -> list[str]:
        return [f"{name} = {self.scalar}({value!r})" for value, name in self.constants.items()]

    def emit(self, node: Node, lookup, *, own: bool = False) -> str:
        """The expression of ``node``; ``own=True`` builds it from its children even if named."""
        found = None if own else lookup(node)
        if found is not None:
            return found
        if lookup is not _pure_lookup and not isinstance(node, (Const, Name)) and _pure(node):
            # only constants, parameters, t and dt: Python floats in the reference, so float64
            return f"{self.scalar}({self.emit(node, _pure_lookup)})"
        if isinstance(node, Const):
            return self.const(node.value)
        if isinstance(node, Unary):
            return f"(-{self.emit(node.operand, lookup)})"
        if isinstance(node, Binary):
            left = self.emit(node.left, lookup)
            if node.op == "**" and isinstance(node.right, Const) and node.right.value == 2.0:
                return f"({left} * {left})"
            return f"({left} {node.op} {self.emit(node.right, lookup)})"
        if isinstance(node, Compare):
            return f"({self.emit(node.left, lookup)} {node.op} {self.emit(node.right, lookup)})"
        if isinstance(node, Call):
            args = [self.emit(arg, lookup) for arg in node.args]
            zero, one, half = self.const(0.0), self.const(1.0), self.const(0.5)
            return FUNCTIONS[node.func].numba.format(*args, zero=zero, one=one, half=half, tanh=self.tanh)
        raise TypeError(f"cannot generate code for {node!r}")


def _pure(node: Node) -> bool:
    return all(
        isinstance(inner, Const) or (isinstance(inner, Name) and inner.kind in ("param", "time", "dt"))
        for inner in walk(node)
        if not inner.children()
    ) and not any(isinstance(inner, Reduce) for inner in walk(node))


def _pure_lookup(node: Node) -> str | None:
    """Leaves of a pure scalar subtree as float64: ``d_<param>``, ``time``, ``dt``, literals."""
    if isinstance(node, Const):
        return repr(node.value)
    if isinstance(node, Name):
        return {"param": f"d_{node.var}", "time": "time", "dt": "dt"}[node.kind]
    return None


def _multiplied(factors: tuple[Node, ...]) -> list[Node]:
    """The operands of the products ``factors`` multiply, products taken apart."""
    operands: list[Node] = []
    for factor in factors:
        if isinstance(factor, Binary) and factor.op == "*":
            operands += _multiplied((factor.left, factor.right))
        else:
            operands.append(factor)
    return operands


def _single_unit_factor(factors: tuple[Node, ...], kind: str) -> tuple[Name, list[Node]] | None:
    """When ``factors`` multiply one unit variable of kind ``kind`` (``"pre"``, ``"post"``) by pure
    scalars: that variable and the scalars; else None."""
    operands = _multiplied(factors)
    units = [f for f in operands if not _pure(f)]
    if len(units) == 1 and isinstance(units[0], Name) and units[0].kind == kind:
        return units[0], [f for f in operands if f is not units[0]]
    return None


def _reductions(node: Node) -> list[Reduce]:
    """Reductions under ``node``, innermost first, each once."""
    found: list[Reduce] = []

    def visit(current: Node) -> None:
        for child in current.children():
            visit(child)
        if isinstance(current, Reduce) and current not in found:
            found.append(current)

    visit(node)
    return found


def _contains(node: Node, kinds: tuple[type, ...]) -> bool:
    return any(isinstance(inner, kinds) for inner in walk(node))


# ----------------------------------------------------------------------------------------
# the network's source
# ----------------------------------------------------------------------------------------


@dataclass
class KernelSpec:
    """One generated function: its name and what to pass it.

    ``arrays`` are state keys, ``buffers`` (name, shape, dtype) scratch arrays the engine
    allocates once (shape entries ``"trials"``, ``"npost"``, ``"npre"``, ``"chunks"`` or numbers);
    ``params`` the parameter values in order, a plasticity kernel's followed by ``1 / trials``, by
    which every trial mean of the kernel is multiplied (read at run time: with fast-math,
    ``x / trials`` became a product with the rounded reciprocal where a compiled program inlined
    the kernel and a division where Python called it, one rounding apart).
    """

    function: str
    arrays: list[str]
    params: list[float]
    buffers: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)
    fusable: bool = False
    parallel: bool = False


@dataclass
class NetworkSource:
    """The generated module text and the kernels it defines."""

    text: str
    units: dict[tuple[str, str], KernelSpec]
    plasticity: dict[str, KernelSpec]


#: ``tanh`` in float32 as a rational function (Eigen's ``generic_fast_tanh_float``, within
#: 5 ulp, 2.6e-7 absolute, of the exact value): libm's ``tanhf`` is a call per element that LLVM
#: cannot vectorise (numba without SVML), and was 20x slower than numpy's SIMD tanh. NaN
#: passes through; beyond +-9 the result is +-1, as the rounded exact value.
_TANH32 = f"""@numba.njit(inline="always", fastmath={{{", ".join(repr(f) for f in sorted(FASTMATH - {"reassoc"}))}}}, error_model="numpy")
def tanh32(x):
    c = np.float32(7.90531110763549805)
    y = min(max(x, -c), c)
    y2 = y * y
    p = np.float32(-2.76076847742355e-16)
    p = p * y2 + np.float32(2.00018790482477e-13)
    p = p * y2 + np.float32(-8.60467152213735e-11)
    p = p * y2 + np.float32(5.12229709037114e-08)
    p = p * y2 + np.float32(1.48572235717979e-05)
    p = p * y2 + np.float32(6.37261928875436e-04)
    p = p * y2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * y2 + np.float32(1.18534705686654e-04)
    q = q * y2 + np.float32(2.26843463243900e-03)
    q = q * y2 + np.float32(4.89352518554385e-03)
    r = (y * p) / q
    r = x if abs(x) < np.float32(0.0004) else r
    r = np.float32(1.0) if x > np.float32(9.0) else r  # tanh rounds to +-1 from here on
    r = np.float32(-1.0) if x < np.float32(-9.0) else r
    return r if x == x else x

"""


def generate(network: Network, trials: int, dtype: str) -> NetworkSource:
    """Source text of every kernel of ``network`` for ``trials`` trials in ``dtype``."""
    scalar = f"np.{dtype}"
    header = ["import numba", "import numpy as np", "", "from plasticity.backends.blas import gemm, threads", "", "", _TANH32, ""]
    pieces = []
    units: dict[tuple[str, str], KernelSpec] = {}
    for name, population in network.populations.items():
        for stage, equations in population.stages.items():
            if not equations:
                continue
            function = f"units_{len(units)}"
            spec, text = _population_kernel(network, name, stage, equations, function, trials, scalar)
            units[(name, stage)] = spec
            pieces.append(text)
    plasticity: dict[str, KernelSpec] = {}
    for name, projection in network.projections.items():
        if projection.rule is None:
            continue
        writer = _PlasticityWriter(network, name, trials, scalar)
        spec, text = writer.kernel(f"plasticity_{len(plasticity)}")
        plasticity[name] = spec
        pieces.append(text)
    return NetworkSource("\n".join(header) + "\n\n".join(p for p in pieces if p), units, plasticity)


# ----------------------------------------------------------------------------------------
# populations
# ----------------------------------------------------------------------------------------


def _population_kernel(network, name, stage, equations, function, trials, scalar):
    population = network.populations[name]
    keys = [f"{name}.{var}" for var in [*population.variables, *sorted(network.summed[name])]]
    arrays = {key.split(".", 1)[1]: f"s{index}" for index, key in enumerate(keys)}
    params = list(population.params)
    emitter = _Emitter(scalar)
    parallel = trials * population.n >= PARALLEL_MIN_ELEMENTS and trials > 1
    body = _Lines()
    body.depth = 2
    pending: list[str] = []  # element statements of consecutive equations: one loop over the units
    # a unit's variables held in locals across the equations of one loop: each read from its array
    # once and stored when assigned (reading back what was just stored kept a fused pass from
    # running as fast as one written by hand)
    held: set[str] = set()

    def flush() -> None:
        if pending:
            body("for u in range(n):")
            body.indent()
            for line in pending:
                body(line)
            body.dedent()
            pending.clear()
            held.clear()

    def local(var: str) -> str:
        if var not in held:
            held.add(var)
            pending.append(f"v_{var} = {arrays[var]}[tr, u]")
        return f"v_{var}"

    for number, equation in enumerate(equations):
        names: dict[Node, str] = {}

        def lookup(node: Node, names=names, element: bool = False) -> str | None:
            if node in names:
                return names[node]
            if isinstance(node, Name):
                if node.kind == "param":
                    return f"p_{node.var}"
                if node.kind == "time":
                    return "tt"
                if node.kind == "dt":
                    return "dtt"
                return local(node.var) if element else f"{arrays[node.var]}[tr, u]"
            return None

        reductions = _reductions(equation.expr)
        if reductions:  # they read every unit of the equations before: those loops end first
            flush()
            body(f"# {_comment(equation.text)}")
        for index, reduce in enumerate(reductions):
            label = f"r{number}_{index}"
            argument = emitter.emit(reduce.arg, lookup)
            if reduce.func in ("sum", "mean"):
                body(f"{label} = 0.0")
                body("for u in range(n):")
                body.indent()(f"{label} += {argument}")
                body.dedent()
                if reduce.func == "mean":
                    body(f"{label} = {label} / n")
                names[reduce] = f"{scalar}({label})"
            elif reduce.func in ("max", "min"):
                body("u = 0")
                body(f"{label} = {argument}")
                body("for u in range(1, n):")
                body.indent()(f"{label} = {reduce.func}({label}, {argument})")
                body.dedent()
                names[reduce] = label
            else:  # softmax over units
                body("u = 0")
                body(f"{label}m = {argument}")
                body("for u in range(1, n):")
                body.indent()(f"{label}m = max({label}m, {argument})")
                body.dedent()
                body(f"{label}s = 0.0")
                body("for u in range(n):")
                body.indent()(f"{label}s += np.exp({argument} - {label}m)")
                body.dedent()
                body(f"{label}s = {scalar}({label}s)")
                names[reduce] = f"(np.exp({argument} - {label}m) / {label}s)"
        pending.append(f"# {_comment(equation.text)}")
        value = emitter.emit(equation.expr, lambda node, names=names: lookup(node, names, element=True))
        target = local(equation.var) if equation.op != "=" else f"v_{equation.var}"
        pending.append(_assign(target, equation.op, value))
        held.add(equation.var)
        pending.append(f"{arrays[equation.var]}[tr, u] = v_{equation.var}")
    flush()
    lines = _Lines()
    lines.indent()
    lines(f"tt = {scalar}(time)")
    lines(f"dtt = {scalar}(dt)")
    for index, param in enumerate(params):
        if not param.isidentifier():
            continue  # no equation can name it
        lines(f"d_{param} = prm[{index}]")
        lines(f"p_{param} = {scalar}(d_{param})")
    for line in emitter.constant_lines():
        lines(line)
    lines(f"trials, n = {arrays[population.variables[0]] if population.variables else 's0'}.shape")
    lines("for tr in numba.prange(trials):")
    arguments = ["time", "dt", "prm", *arrays.values()]
    text = f"# population {name}, stage {_comment(stage)!r}\n" + _kernel_source(function, arguments, lines.text() + body.text(), parallel)
    return KernelSpec(function, keys, [population.params[p] for p in params], parallel=parallel), text


def _comment(text: str) -> str:
    """An equation as a one-line comment of the generated source."""
    return " ".join(text.split())


def _assign(target: str, op: str, value: str) -> str:
    if op == "=":
        return f"{target} = {value}"
    return f"{target} = {target} {op[0]} {value}"


# ----------------------------------------------------------------------------------------
# plasticity
# ----------------------------------------------------------------------------------------


class _BlockViews:
    """Column blocks of a row: every array read at column ``j`` is read through a view that
    starts at the block (``X[t, i, j0:j1]``), indexed from 0, so the inner loop is a plain
    contiguous loop that LLVM vectorises (absolute indices from a non-zero start are not);
    values per row (``X[t, i]``) become locals once per row. Sums over a block are the
    dtype's vector partial sums, added into float64 once per block."""

    SIZE = 1024

    def __init__(self, number: int | str, lines: _Lines, scalar: str, deferred: bool = False):
        self.number = number
        self.lines = lines
        self.scalar = scalar
        self.deferred = deferred  # row locals defined with the views (they depend on the trial)
        self.views: dict[str, tuple[str, str]] = {}  # "X[t, j]" -> ("label[j]", "label = X[t, j0:j1]")
        self.locals: dict[str, str] = {}

    def view(self, reference: str) -> str:
        """``X[..., j]`` as a block view, or ``X[t, i]`` as a row local."""
        if reference.endswith(", j]"):
            if reference not in self.views:
                label = f"v{self.number}_{len(self.views)}"
                self.views[reference] = (f"{label}[j]", f"{label} = {reference[:-2]}j0:j1]")
            return self.views[reference][0]
        if reference not in self.locals:
            label = f"u{self.number}_{len(self.locals)}"
            self.locals[reference] = label
            if not self.deferred:
                self.lines(f"{label} = {reference}")
        return self.locals[reference]

    def definitions(self) -> list[str]:
        """Lines defining the views (and deferred locals) of the current block."""
        lines = [definition for _, definition in self.views.values()]
        if self.deferred:
            lines += [f"{label} = {reference}" for reference, label in self.locals.items()]
        return lines

    def lookup(self, inner):
        cast = f"{self.scalar}("

        def lookup(node: Node) -> str | None:
            found = inner(node)
            if found is None:
                return None
            if found.startswith(cast) and found.endswith(", j])"):  # a column reduction
                return f"{cast}{self.view(found[len(cast) : -1])})"
            if "(" in found or not found.endswith((", j]", "[t, i]")):
                return found
            return self.view(found)

        return lookup

    def open(self, start: str, stop: str, extra: list[str] = ()) -> None:
        self.lines(f"for j0 in range({start}, {stop}, {self.SIZE}):")
        self.lines.indent()(f"j1 = min(j0 + {self.SIZE}, {stop})")
        for line in self.definitions():
            self.lines(line)
        for line in extra:
            self.lines(line)

    def close(self) -> None:
        self.lines.dedent()


class _PlasticityWriter:
    """The plasticity kernel of one projection: one pass (or a few) per equation."""

    def __init__(self, network: Network, name: str, trials: int, scalar: str):
        self.network = network
        self.name = name
        self.projection = network.projections[name]
        self.rule = self.projection.rule
        self.scalar = scalar
        self.shared = self.projection.shared
        self.emitter = _Emitter(scalar)
        self.keys: list[str] = []
        self.buffers: list[tuple[str, tuple[str, ...], str]] = []
        self.trials = trials
        size = trials * self.projection.post.n * self.projection.pre.n
        self.parallel = size >= PARALLEL_MIN_ELEMENTS
        self.lines = _Lines()
        self.scalars: list[str] = []  # pure scalar subexpressions, computed at the top

    # names -----------------------------------------------------------------------------
    def array(self, key: str) -> str:
        if key not in self.keys:
            self.keys.append(key)
        return f"s{self.keys.index(key)}"

    def buffer(self, shape: tuple[str, ...], dtype: str = "float64") -> str:
        name = f"b{len(self.buffers)}"
        self.buffers.append((name, shape, dtype))
        return name

    def side_key(self, node: Name) -> str:
        population = self.projection.pre if node.kind == "pre" else self.projection.post
        owned = {eq.var for eq in self.rule.parsed if eq.level == node.kind}
        if node.var in owned:
            return f"{self.name}.{node.name}"
        return f"{population.name}.{node.var}"

    def name_lookup(self, node: Node, *, t: str = "t") -> str | None:
        if not isinstance(node, Name):
            return None
        if node.kind == "param":
            return f"p_{node.var}"
        if node.kind == "time":
            return "tt"
        if node.kind == "dt":
            return "dtt"
        if node.kind == "global":
            return f"{self.array(f'{self.name}.{node.var}')}[{t}]"
        if node.kind == "pre":
            return f"{self.array(self.side_key(node))}[{t}, j]"
        if node.kind == "post":
            return f"{self.array(self.side_key(node))}[{t}, i]"
        weights = self.array(f"{self.name}.{node.var}")
        return f"{weights}[i, j]" if self.shared else f"{weights}[{t}, i, j]"

    # the kernels -----------------------------------------------------------------------
    def kernel(self, function: str) -> tuple[KernelSpec, str]:
        """The function ``function``: every equation of the rule in order, one pass (or a few) each."""
        parsed = self.rule.parsed
        w_equations = [k for k, eq in enumerate(parsed) if eq.level == "synapse" and eq.var == "w"]
        fuse_at = w_equations[-1] if w_equations and not self.shared else None
        self.lines = _Lines()
        self.lines.depth = 1
        body = self.lines.lines
        for number, equation in enumerate(parsed):
            self.lines(f"# {self.name}: {_comment(equation.text)}")
            update = separable_terms(equation) if self.shared and equation.level == "synapse" else None
            if update is not None:
                self.separable_update(equation, update)
            elif equation.level == "synapse":
                self.synapse_equation(number, equation, fused=number == fuse_at)
            else:
                self.side_equation(number, equation)
        head = _Lines()
        arguments = ["time", "dt", "prm", "trials", "npost", "npre", "fuse", "xn", "drive"]
        arguments += [f"s{k}" for k in range(len(self.keys))] + [name for name, _, _ in self.buffers]
        head.indent()
        head(f"tt = {self.scalar}(time)")
        head(f"dtt = {self.scalar}(dt)")
        for index, param in enumerate(self.rule.params):
            if not param.isidentifier():
                continue  # no equation can name it
            head(f"d_{param} = prm[{index}]")
            head(f"p_{param} = {self.scalar}(d_{param})")
        head(f"per_trial = prm[{len(self.rule.params)}]")
        for line in self.emitter.constant_lines() + self.scalars:
            head(line)
        parallel = self.parallel and any("numba.prange" in line for line in body)
        text = _kernel_source(function, arguments, head.text() + "\n".join(body) + "\n", parallel)
        spec = KernelSpec(
            function,
            list(self.keys),
            [*self.rule.params.values(), 1.0 / self.trials],
            list(self.buffers),
            fusable=fuse_at is not None,
            parallel=parallel,
        )
        return spec, text

    def array_mask(self) -> str:
        return self.array(f"{self.name}.__mask__")

    # separable updates of shared weights ---------------------------------------------------
    def term(self, coefficient: float, factors: tuple[Node, ...]) -> str:
        """``coefficient * product(factors)`` in the state's dtype; the coefficient and the pure scalar
        factors multiply in float64 first, as Python floats do in the reference."""
        pure = [self.emitter.emit(f, _pure_lookup) for f in factors if _pure(f)]
        scalar = f"{self.scalar}({' * '.join([repr(coefficient), *pure])})"
        return " * ".join([scalar, *(self.emitter.emit(f, self.name_lookup) for f in factors if not _pure(f))])

    def separable_update(self, equation: Equation, update: SeparableUpdate) -> None:
        """``w_new = w * (base + rows[i] + columns[j]) + (step / trials) * L R`` (see
        :class:`SeparableUpdate`): the scales as trial means in float64, the outer terms as
        factor matrices ``L`` (post, terms x trials) and ``R`` (terms x trials, pre) in the state's
        dtype (a single term's unit variable standing for itself), their product added to ``w`` by
        one BLAS call; then the mask."""
        lines = self.lines
        step = 1.0 if update.sign == 0 else float(update.sign)
        base = 1.0 if update.sign else 0.0
        weights = self.array(f"{self.name}.{equation.var}")
        dtype = self.scalar[len("np."):]
        scales = []
        for terms, index, count in ((update.row_scale, "i", "npost"), (update.column_scale, "j", "npre")):
            if not terms:
                scales.append(None)
                continue
            total = self.buffer((count,))
            lines(f"{total}[:] = 0.0")
            lines("for t in range(trials):")
            lines.indent()(f"for {index} in range({count}):")
            lines.indent()(f"{total}[{index}] += " + " + ".join(f"np.float64({self.term(c, f)})" for c, f in terms))
            lines.dedent()
            lines.dedent()
            lines(f"{total}[:] = {step!r} * ({total} * per_trial)")
            scales.append(total)
        rows, columns = scales
        if rows or columns or base != 1.0:
            lines("for i in range(npost):")
            lines.indent()(f"b = {base!r}" + (f" + {rows}[i]" if rows else ""))
            lines("for j in range(npre):")
            lines.indent()(f"{weights}[i, j] = {weights}[i, j] * (b" + (f" + {columns}[j])" if columns else ")"))
            lines.dedent()
            lines.dedent()
        if update.outer:
            terms = len(update.outer)
            post_unit = _single_unit_factor(update.outer[0][1], "post") if terms == 1 else None
            pre_unit = _single_unit_factor(update.outer[0][2], "pre") if terms == 1 else None
            # a term's single unit variable is its factor matrix itself (L as its transpose, a view;
            # R as it is) and its scalars go into the product's alpha: only other factors are
            # written out (on two threads, transposing 128 x 256 errors took longer than the BLAS
            # update of a 256 x 256 matrix from them)
            alpha = [repr(step)]
            if post_unit:
                unit, scalars = post_unit
                left = f"{self.array(self.side_key(unit))}.T"
                alpha += [repr(update.outer[0][0]), *(self.emitter.emit(f, _pure_lookup) for f in scalars)]
            else:
                # L is written transposed, (post, terms x trials), in tiles of trials, so that each
                # write is contiguous and each read stays in the cache lines of the tile's rows (one
                # trial after another, every write strided, took 2 ns a factor)
                buffer = self.buffer(("npost", terms, "trials"), dtype)
                lines(f"for t0 in range(0, trials, {TRANSPOSE_TILE}):")
                lines.indent()
                for k, (coefficient, post, _) in enumerate(update.outer):
                    lines("for i in range(npost):")
                    lines.indent()(f"for t in range(t0, min(t0 + {TRANSPOSE_TILE}, trials)):")
                    lines.indent()(f"{buffer}[i, {k}, t] = {self.term(coefficient, post)}")
                    lines.dedent()
                    lines.dedent()
                lines.dedent()
                left = f"{buffer}.reshape(npost, {terms} * trials)"
            if pre_unit:
                unit, scalars = pre_unit
                right = self.array(self.side_key(unit))
                alpha += [self.emitter.emit(f, _pure_lookup) for f in scalars]
            else:
                buffer = self.buffer((terms, "trials", "npre"), dtype)
                lines("for t in range(trials):")
                lines.indent()
                for k, (_, _, pre) in enumerate(update.outer):
                    lines("for j in range(npre):")
                    lines.indent()(f"{buffer}[{k}, t, j] = {self.term(1.0, pre)}")
                    lines.dedent()
                lines.dedent()
                right = f"{buffer}.reshape({terms} * trials, npre)"
            alpha.append("per_trial")
            lines(f"gemm({self.scalar}({' * '.join(alpha)}), {left}, {right}, {self.scalar}(1.0), {weights})")
        if self.projection.mask is not None:  # a flat loop: it vectorises where one over (i, j) did not
            lines(f"flat, kept = {weights}.reshape(-1), {self.array_mask()}.reshape(-1)")
            lines("for k in range(flat.size):")
            lines.indent()("flat[k] *= kept[k]")
            lines.dedent()

    # reductions ------------------------------------------------------------------------
    def classify(self, reduce: Reduce) -> str:
        if reduce.func == "cumsum_post":
            return "cumsum"
        if reduce.func == "sum_pre":
            return "rowsum" if "post" in reduce.arg.domain else "scalar"
        return "colsum" if "pre" in reduce.arg.domain else "scalar"

    def prepare_reductions(self, expr: Node, names: dict[Node, str]) -> list[Reduce]:
        """Emit the passes for column and scalar reductions; return the in-row ones."""
        in_row = []
        lines = self.lines
        for reduce in _reductions(expr):
            kind = self.classify(reduce)
            if kind == "colsum":
                buffer = self.buffer(("trials", "npre"))
                blocks = _BlockViews(f"c{len(self.buffers)}", lines, self.scalar, deferred=True)
                argument = self.emitter.emit(reduce.arg, blocks.lookup(self.name_lookup))
                lines(f"chunks = (npre + {COLUMN_CHUNK - 1}) // {COLUMN_CHUNK}")
                lines("for k in numba.prange(trials * chunks):")
                lines.indent()
                lines("t = k // chunks")
                lines(f"j0 = (k % chunks) * {COLUMN_CHUNK}")
                lines(f"j1 = min(j0 + {COLUMN_CHUNK}, npre)")
                lines(f"total = {buffer}[t, j0:j1]")
                lines("total[:] = 0.0")
                lines("for i in range(npost):")
                lines.indent()
                for line in blocks.definitions():
                    lines(line)
                lines("for j in range(j1 - j0):")
                lines.indent()(f"total[j] += {argument}")
                lines.dedent()
                lines.dedent()
                lines.dedent()
                names[reduce] = f"{self.scalar}({buffer}[t, j])"
            elif kind == "scalar":
                buffer = self.buffer(("trials",))
                index = "j" if reduce.func == "sum_pre" else "i"
                count = "npre" if reduce.func == "sum_pre" else "npost"
                argument = self.emitter.emit(reduce.arg, self.name_lookup)
                lines("for t in range(trials):")
                lines.indent()(f"{buffer}[t] = 0.0")
                lines(f"for {index} in range({count}):")
                lines.indent()(f"{buffer}[t] += {argument}")
                lines.dedent()
                lines.dedent()
                names[reduce] = f"{self.scalar}({buffer}[t])"
            else:
                in_row.append(reduce)
        return in_row

    # hoisting ------------------------------------------------------------------------
    def hoist(self, expr: Node, names: dict[Node, str], number: int) -> tuple[list[tuple[str, Node]], list[tuple[str, Node]]]:
        """Pick maximal non-trivial subtrees over post/no units (rows) and over pre units (columns)."""
        rows: list[tuple[str, Node]] = []
        columns: list[tuple[str, Node]] = []

        def visit(node: Node) -> None:
            if node in names or isinstance(node, (Name, Const)):
                return
            if not node.boolean and _pure(node):  # constants and parameters: once per call
                label = f"g{len(self.scalars)}"
                self.scalars.append(f"{label} = {self.emitter.emit(node, lambda _: None)}")
                names[node] = label
                return
            if not node.boolean and node.domain <= _POST:
                label = f"r{number}_{len(rows)}"
                rows.append((label, node))
                names[node] = f"{label}[t]" if self.shared else label
                return
            if not node.boolean and node.domain == _PRE:
                buffer = self.buffer(("trials", "npre"), self.scalar[3:])
                columns.append((buffer, node))
                names[node] = f"{buffer}[t, j]"
                return
            for child in node.children():
                visit(child)

        visit(expr)
        return rows, columns

    def lookup_with(self, names: dict[Node, str]):
        def lookup(node: Node) -> str | None:
            if node in names:
                return names[node]
            return self.name_lookup(node)

        return lookup

    # synapse equations ---------------------------------------------------------------------
    def synapse_equation(self, number: int, equation: Equation, fused: bool) -> None:
        lines = self.lines
        names: dict[Node, str] = {}
        in_row = self.prepare_reductions(equation.expr, names)
        cumsums = [r for r in in_row if r.func == "cumsum_post"]
        rowsums = [r for r in in_row if r.func == "sum_pre"]
        sequential = bool(cumsums)
        # running sums over columns are independent: rows go in order within chunks of
        # columns, chunks in parallel, unless a row needs all its columns (sum_pre, or a
        # cumsum_post of post-only terms)
        chunked = sequential and not rowsums and all("pre" in r.arg.domain for r in cumsums)
        # in-row reductions: names first so that hoisted subtrees can use them
        carries = []
        for index, reduce in enumerate(rowsums):
            names[reduce] = f"{self.scalar}(q{number}_{index}[t])" if self.shared else f"{self.scalar}(q{number}_{index})"
        for index, reduce in enumerate(cumsums):
            label = f"c{number}_{index}"
            if "pre" in reduce.arg.domain:
                carry = self.buffer(("trials", "npre"))
                names[reduce] = f"{self.scalar}({label})"
            else:
                carry = self.buffer(("trials",))
                names[reduce] = f"{self.scalar}({label}[t])" if self.shared else f"{self.scalar}({label})"
            carries.append((label, carry, reduce))
        element_cumsums = {r for _, _, r in carries if "pre" in r.arg.domain}
        rows, columns = self.hoist(equation.expr, names, number)
        lookup = self.lookup_with(names)
        plain = self.name_lookup
        # column buffers, once per trial
        if columns:
            lines("for t in numba.prange(trials):")
            lines.indent()("for j in range(npre):")
            lines.indent()
            for buffer, node in columns:
                lines(f"{buffer}[t, j] = {self.emitter.emit(node, lookup, own=True)}")
            lines.dedent()
            lines.dedent()
        for _, carry, _ in carries:
            lines(f"{carry}[...] = 0.0")
        weights = self.array(f"{self.name}.{equation.var}")
        target = f"{weights}[i, j]" if self.shared else f"{weights}[t, i, j]"
        masked = self.projection.mask is not None
        if self.shared:
            self._shared_pass(number, equation, lookup, plain, rows, rowsums, carries, sequential, chunked, target, masked)
            return
        if chunked:
            part = self.buffer(("trials", "chunks", "npost")) if fused else None
            lines(f"chunks = (npre + {COLUMN_CHUNK - 1}) // {COLUMN_CHUNK}")
            lines("for k in numba.prange(trials * chunks):")
            lines.indent()("t = k // chunks")
            lines("c = k % chunks")
            lines(f"ja = c * {COLUMN_CHUNK}")
            lines(f"jb = min(ja + {COLUMN_CHUNK}, npre)")
            lines("for i in range(npost):")
            lines.indent()
        elif sequential:
            lines("for t in numba.prange(trials):")
            lines.indent()("for i in range(npost):")
            lines.indent()
        else:
            lines("for k in numba.prange(trials * npost):")
            lines.indent()("t = k // npost")
            lines("i = k % npost")
        for index, reduce in enumerate(rowsums):
            label = f"q{number}_{index}"
            lines(f"{label} = 0.0")
            lines("for j in range(npre):")
            lines.indent()(f"{label} += {self.emitter.emit(reduce.arg, plain)}")
            lines.dedent()
        for label, carry, reduce in carries:
            if reduce not in element_cumsums:
                lines(f"{label} = {carry}[t] + {self.emitter.emit(reduce.arg, plain)}")
                lines(f"{carry}[t] = {label}")
        for label, node in rows:
            lines(f"{label} = {self.emitter.emit(node, lookup, own=True)}")
        blocks = _BlockViews(number, lines, self.scalar)
        value = self.emitter.emit(equation.expr, blocks.lookup(lookup))
        target = blocks.lookup(lookup)(Name(equation.var, "synapse", equation.var))
        cumsum_lines = []
        for label, carry, reduce in carries:
            if reduce in element_cumsums:
                running = blocks.view(f"{carry}[t, j]")
                cumsum_lines.append(f"{label} = {running} + {self.emitter.emit(reduce.arg, blocks.lookup(plain))}")
                cumsum_lines.append(f"{running} = {label}")
        mask = blocks.view(f"{self.array_mask()}[i, j]") if masked else None
        span = ("ja", "jb") if chunked else ("0", "npre")
        variants = [("fuse", True), ("not fuse", False)] if fused else [(None, False)]
        for condition, accumulate in variants:
            if condition is not None:
                lines(f"if {condition}:")
                lines.indent()
            if accumulate:
                lines("acc = 0.0")
            blocks.open(*span, extra=["xr = xn[t, j0:j1]"] if accumulate else [])
            if accumulate:
                lines(f"part = {self.scalar}(0.0)")
            lines("for j in range(j1 - j0):")
            lines.indent()
            for line in cumsum_lines:
                lines(line)
            value_t = f"{self.scalar}({value})"  # as the reference: the update in the state's dtype
            lines(f"v = {value_t}" if equation.op == "=" else f"v = {target} {equation.op[0]} {value_t}")
            if masked:
                lines(f"v = v * {mask}")
            lines(f"{target} = v")
            if accumulate:
                lines("part += v * xr[j]")
            lines.dedent()
            if accumulate:
                lines("acc += part")
            blocks.close()
            if accumulate:
                lines(f"{part}[t, c, i] = acc" if chunked else "drive[t, i] = acc")
            if condition is not None:
                lines.dedent()
        lines.dedent()
        if sequential:
            lines.dedent()
        if chunked and fused:
            lines("if fuse:")
            lines.indent()("for k in numba.prange(trials * npost):")
            lines.indent()("t = k // npost")
            lines("i = k % npost")
            lines("acc = 0.0")
            lines("for c in range(chunks):")
            lines.indent()(f"acc += {part}[t, c, i]")
            lines.dedent()
            lines("drive[t, i] = acc")
            lines.dedent()
            lines.dedent()

    def _shared_pass(self, number, equation, lookup, plain, rows, rowsums, carries, sequential, chunked, target, masked):
        """The trial mean of the update, row by row and block by block: for each trial a
        contiguous pass over the block adds into a float64 block total, then the block of
        the row is updated once."""
        lines = self.lines
        element_cumsums = {r for _, _, r in carries if "pre" in r.arg.domain}
        if chunked:
            lines(f"chunks = (npre + {COLUMN_CHUNK - 1}) // {COLUMN_CHUNK}")
            lines("for c in numba.prange(chunks):")
            lines.indent()(f"ja = c * {COLUMN_CHUNK}")
            lines(f"jb = min(ja + {COLUMN_CHUNK}, npre)")
        else:
            lines("ja = 0")
            lines("jb = npre")
        lines(f"for i in {'range' if sequential else 'numba.prange'}(npost):")
        lines.indent()
        for index, reduce in enumerate(rowsums):
            label = f"q{number}_{index}"
            lines(f"{label} = np.zeros(trials)")
            lines("for t in range(trials):")
            lines.indent()("for j in range(npre):")
            lines.indent()(f"{label}[t] += {self.emitter.emit(reduce.arg, plain)}")
            lines.dedent()
            lines.dedent()
        for label, carry, reduce in carries:
            if reduce not in element_cumsums:
                lines(f"{label} = np.empty(trials)")
                lines("for t in range(trials):")
                lines.indent()(f"{label}[t] = {carry}[t] + {self.emitter.emit(reduce.arg, plain)}")
                lines(f"{carry}[t] = {label}[t]")
                lines.dedent()
        for label, _ in rows:
            lines(f"{label} = np.empty(trials, dtype={self.scalar})")
        if rows:
            lines("for t in range(trials):")
            lines.indent()
            for label, node in rows:
                lines(f"{label}[t] = {self.emitter.emit(node, lookup, own=True)}")
            lines.dedent()
        blocks = _BlockViews(number, lines, self.scalar, deferred=True)
        value = self.emitter.emit(equation.expr, blocks.lookup(lookup))
        cumsum_lines = []
        for label, carry, reduce in carries:
            if reduce in element_cumsums:
                running = blocks.view(f"{carry}[t, j]")
                cumsum_lines.append(f"{label} = {running} + {self.emitter.emit(reduce.arg, blocks.lookup(plain))}")
                cumsum_lines.append(f"{running} = {label}")
        lines(f"for j0 in range(ja, jb, {_BlockViews.SIZE}):")
        lines.indent()(f"j1 = min(j0 + {_BlockViews.SIZE}, jb)")
        lines("total = np.zeros(j1 - j0)")
        lines("for t in range(trials):")
        lines.indent()
        for line in blocks.definitions():
            lines(line)
        lines("for j in range(j1 - j0):")
        lines.indent()
        for line in cumsum_lines:
            lines(line)
        lines(f"total[j] += {value}")
        lines.dedent()
        lines.dedent()
        lines(f"wv = {target[:-2]}j0:j1]")
        if masked:
            lines(f"mv = {self.array_mask()}[i, j0:j1]")
        lines("for j in range(j1 - j0):")
        lines.indent()(f"v = {self.scalar}(total[j] * per_trial)")
        if equation.op != "=":
            lines(f"v = wv[j] {equation.op[0]} v")
        if masked:
            lines("v = v * mv[j]")
        lines("wv[j] = v")
        lines.dedent()
        lines.dedent()
        lines.dedent()
        if chunked:
            lines.dedent()

    # post- and pre-level equations -----------------------------------------------------------
    def side_equation(self, number: int, equation: Equation) -> None:
        lines = self.lines
        names: dict[Node, str] = {}
        in_row = self.prepare_reductions(equation.expr, names)
        lookup = self.lookup_with(names)
        index_name, count = ("i", "npost") if equation.level == "post" else ("j", "npre")
        lines(f"for k in numba.prange(trials * {count}):")
        lines.indent()(f"t = k // {count}")
        lines(f"{index_name} = k % {count}")
        for index, reduce in enumerate(in_row):  # sum_pre of synapse terms in a post equation
            label = f"q{number}_{index}"
            lines(f"{label} = 0.0")
            lines("for j in range(npre):")
            lines.indent()(f"{label} += {self.emitter.emit(reduce.arg, self.name_lookup)}")
            lines.dedent()
            names[reduce] = f"{self.scalar}({label})"
        target = f"{self.array(f'{self.name}.{equation.target}')}[t, {index_name}]"
        lines(_assign(target, equation.op, self.emitter.emit(equation.expr, lookup)))
        lines.dedent()


# ----------------------------------------------------------------------------------------
# separable increments of shared weights
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeparableUpdate:
    """``w_new = w * (base + mean_t R[t, i] + mean_t C[t, j]) + mean_t sum_k F_k[t, i] G_k[t, j]``.

    ``row_scale`` and ``column_scale`` are lists of factor products (each a tuple of nodes
    over post units / scalars, or pre units / scalars) whose trial means scale ``w``;
    ``outer`` lists pairs (post factors, pre factors) added as one GEMM. ``sign`` is +1 or
    -1 (``+=``/``-=``), 0 for ``=``.
    """

    sign: int
    row_scale: tuple[tuple[float, tuple[Node, ...]], ...]
    column_scale: tuple[tuple[float, tuple[Node, ...]], ...]
    outer: tuple[tuple[float, tuple[Node, ...], tuple[Node, ...]], ...]


#: Largest number of terms of a separable update (each adds a factor per unit and trial to write).
_MAX_TERMS = 16


def separable_terms(equation: Equation) -> SeparableUpdate | None:
    """The separable form of a shared-weight update, or None when it has none.

    Accepted: ``+=``, ``-=`` or ``=`` of a sum of terms ``c * f(post) * g(pre) * w**k``
    (:func:`~plasticity.equations.separable.expand`) with ``k`` in {0, 1}, where a ``k = 1``
    term has no pre factor or no post factor (so its trial mean is a row or column scaling; a
    product of both would need a matrix). Factors are subtrees over at most one axis without
    reductions; no other synapse variable appears.
    """
    if equation.op not in ("+=", "-=", "="):
        return None
    terms = expand(equation.expr, _MAX_TERMS)
    if terms is None:
        return None
    rows, columns, outer = [], [], []
    for term in terms:
        coefficient, factors, power = term.coef, term.factors, len(term.synapses)
        if power > 1 or any(var != equation.var for var in term.synapses):
            return None
        if any(_contains(factor, (Reduce,)) for factor in factors):
            return None
        post = tuple(f for f in factors if "post" in f.domain)
        pre = tuple(f for f in factors if "pre" in f.domain)
        scalars = tuple(f for f in factors if not f.domain)
        if power == 1:
            if post and pre:
                return None
            (columns if pre else rows).append((coefficient, scalars + (pre or post)))
        else:
            outer.append((coefficient, scalars + post, pre))
    sign = {"+=": 1, "-=": -1, "=": 0}[equation.op]
    return SeparableUpdate(sign, tuple(rows), tuple(columns), tuple(outer))
