"""The source text of generated numba kernels: lines, expressions, decorators.

The pieces every generated kernel is written with (:mod:`plasticity.backends.numba_units` writes
population kernels, :mod:`plasticity.backends.numba_plasticity` plasticity kernels, and
:mod:`plasticity.backends.numba_program` step programs): :class:`Lines` collects indented
source lines, :class:`Emitter` turns expression trees into Python expressions (elementwise
functions from the table of :mod:`plasticity.equations.functions`), :func:`kernel_source`
wraps a body in its ``@numba.njit`` decorator (a threaded kernel as a serial and a threaded
variant), and :class:`KernelSpec` tells the engine what to pass a generated function.

Element arithmetic runs in the state's dtype; subtrees of constants, parameters, ``t`` and
``dt`` are computed in float64 first, as Python floats are in the numpy reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plasticity.equations import Binary, Call, Compare, Const, Name, Node, Reduce, Unary, walk
from plasticity.equations.functions import FUNCTIONS

__all__ = [
    "FASTMATH",
    "PARALLEL_MIN_ELEMENTS",
    "TANH32",
    "Lines",
    "Emitter",
    "KernelSpec",
    "kernel_source",
    "is_pure",
    "pure_lookup",
    "reductions_under",
    "contains",
    "comment",
    "assign_statement",
]

#: LLVM fast-math flags of every kernel: no ``nnan``/``ninf``, so NaN and Inf propagate
#: and divergence is detected.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
#: Kernels over fewer elements than this run on one thread: thread start-up costs more than a
#: second thread saves below it (measured on 2 cores: ``benchmarks/README.md``).
PARALLEL_MIN_ELEMENTS = 1 << 14


class Lines:
    """Lines of generated source at the current indentation (``lines(text)`` adds one)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def indent(self) -> "Lines":
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


def kernel_source(function: str, arguments: list[str], body: str, parallel: bool) -> str:
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


class Emitter:
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
        if lookup is not pure_lookup and not isinstance(node, (Const, Name)) and is_pure(node):
            # only constants, parameters, t and dt: Python floats in the reference, so float64
            return f"{self.scalar}({self.emit(node, pure_lookup)})"
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


def is_pure(node: Node) -> bool:
    """Whether ``node`` is made of constants, parameters, ``t`` and ``dt`` only (no reductions)."""
    return all(
        isinstance(inner, Const) or (isinstance(inner, Name) and inner.kind in ("param", "time", "dt"))
        for inner in walk(node)
        if not inner.children()
    ) and not any(isinstance(inner, Reduce) for inner in walk(node))


def pure_lookup(node: Node) -> str | None:
    """Leaves of a pure scalar subtree as float64: ``d_<param>``, ``time``, ``dt``, literals."""
    if isinstance(node, Const):
        # a call, not a literal: '-2.0 ** 0.5' would read as -(2.0 ** 0.5), and Python folds
        # '(-2.0) ** 0.5' to a complex number; np.float64 powers give NaN as numpy does
        return f"np.float64({node.value!r})"
    if isinstance(node, Name):
        return {"param": f"d_{node.var}", "time": "time", "dt": "dt"}[node.kind]
    return None


def reductions_under(node: Node) -> list[Reduce]:
    """Reductions under ``node``, innermost first, each once."""
    found: list[Reduce] = []

    def visit(current: Node) -> None:
        for child in current.children():
            visit(child)
        if isinstance(current, Reduce) and current not in found:
            found.append(current)

    visit(node)
    return found


def contains(node: Node, kinds: tuple[type, ...]) -> bool:
    """Whether a node of one of ``kinds`` is under ``node``."""
    return any(isinstance(inner, kinds) for inner in walk(node))


def comment(text: str) -> str:
    """An equation as a one-line comment of the generated source."""
    return " ".join(text.split())


def assign_statement(target: str, op: str, value: str) -> str:
    """The statement ``target op value`` (``op`` one of ``=``, ``+=``, ``-=``, ``*=``) as a plain assignment."""
    if op == "=":
        return f"{target} = {value}"
    return f"{target} = {target} {op[0]} {value}"


@dataclass
class KernelSpec:
    """One generated function: its name and what to pass it.

    ``arrays`` are state keys, ``buffers`` (name, shape, dtype) scratch arrays the engine
    allocates once (shape entries ``"trials"``, ``"npost"``, ``"npre"``, ``"chunks"`` or numbers);
    ``params`` the parameter values in order, a plasticity kernel's followed by ``1 / trials``, by
    which every trial mean of the kernel is multiplied (read at run time: with fast-math,
    ``x / trials`` became a product with the rounded reciprocal where a compiled program inlined
    the kernel and a division where Python called it, one rounding apart). ``fusable``: a
    plasticity kernel can precompute the next drive (``fuse``); ``counts``: it can mark the trials
    whose weights it changed (``count``, into ``changed``).
    """

    function: str
    arrays: list[str]
    params: list[float]
    buffers: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)
    fusable: bool = False
    parallel: bool = False
    counts: bool = False


#: ``tanh`` in float32 as a rational function (Eigen's ``generic_fast_tanh_float``, within
#: 5 ulp, 2.6e-7 absolute, of the exact value): libm's ``tanhf`` is a call per element that LLVM
#: cannot vectorise (numba without SVML), and was many times slower than numpy's SIMD tanh. NaN
#: passes through; beyond +-9 the result is +-1, as the rounded exact value.
TANH32 = f"""@numba.njit(inline="always", fastmath={{{", ".join(repr(f) for f in sorted(FASTMATH - {"reassoc"}))}}}, error_model="numpy")
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
