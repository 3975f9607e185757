"""Code generation for the torch backend: expression trees to tensor closures, and separable updates.

Two generators work over the trees of :mod:`plasticity.equations`:

* :func:`compile_node` turns a tree into a Python closure ``f(env) -> value`` built from torch
  operations, once, when the engine is built. The closure looks names up in ``env`` (names as
  written, ``"y_post"``; synapse reductions by their node) and broadcasts like the numpy
  reference, so the same closure serves whole vectors ``(trials, n)`` and blocks of synapses
  ``(trials, rows, pre)``. Subtrees that are plain scalars (constants, parameters, ``t``,
  ``dt``) are evaluated by the numpy reference itself, in float64.
* :func:`expand` rewrites a synapse expression as a sum of separable monomials
  ``coef * f(post) * g(pre) * s1 * s2 ...`` (``s`` synapse variables), which the engine applies
  to the weights in place with ``mul_``, ``addcmul_`` and one batched GEMM (``baddbmm_`` /
  ``addmm_``), with no temporary the size of ``W``. An expression that does not expand (a
  function of ``w``, ``cumsum_post``) returns ``None`` and is evaluated over blocks of rows.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from plasticity.backends.numpy_backend import evaluate
from plasticity.equations import Binary, Call, Compare, Const, Name, Node, Reduce, Unary, walk

__all__ = ["compile_node", "compile_number", "is_scalar", "expand", "Monomial", "side_of", "MAX_MONOMIALS"]

#: Largest number of monomials an expanded synapse expression may have before it is evaluated
#: over blocks instead (each monomial costs a little work per unit, not per synapse).
MAX_MONOMIALS = 32

Closure = Callable[[dict], Any]
_FULL = frozenset({"pre", "post"})

_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "**": operator.pow}
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


def is_scalar(node: Node) -> bool:
    """True when ``node`` is the same for every unit and trial (no variables, modulators or reductions)."""
    if node.domain:
        return False
    return not any(isinstance(n, Reduce) or (isinstance(n, Name) and n.kind == "global") for n in walk(node))


def _scalar(node: Node) -> Closure:
    def value(env: dict) -> Any:
        return np.asarray(evaluate(node, env)).item()

    return value


def compile_node(node: Node, dtype: torch.dtype) -> Closure:
    """A closure computing ``node`` from ``env`` with torch operations in ``dtype``."""
    if isinstance(node, Const):
        constant = node.value
        return lambda env: constant
    if is_scalar(node):
        return _scalar(node)
    if isinstance(node, Name):
        key = node.name
        return lambda env: env[key]
    if isinstance(node, Reduce):
        if node.axis in _FULL:
            return lambda env: env[node]
        return _population_reduction(node.func, compile_node(node.arg, dtype))
    children = [_numeric(compile_node(child, dtype), child, dtype) for child in node.children()]
    if isinstance(node, Unary):
        (operand,) = children
        return lambda env: -operand(env)
    if isinstance(node, Binary):
        left, right = children
        function = _BINARY[node.op]
        return lambda env: function(left(env), right(env))
    if isinstance(node, Compare):
        left, right = (compile_node(child, dtype) for child in node.children())
        function = _COMPARE[node.op]
        return lambda env: function(left(env), right(env))
    if isinstance(node, Call):
        return _call(node, children, dtype)
    raise TypeError(f"unknown node {node!r}")


def compile_number(node: Node, dtype: torch.dtype) -> Closure:
    """Like :func:`compile_node`, with a comparison's result as 0/1 in ``dtype`` (a factor of a product)."""
    return _numeric(compile_node(node, dtype), node, dtype)


def _numeric(closure: Closure, node: Node, dtype: torch.dtype) -> Closure:
    """Comparison results (bool) as numbers in ``dtype``, as numpy promotes them in arithmetic."""
    if not node.boolean:
        return closure

    def number(env: dict) -> Any:
        value = closure(env)
        return value.to(dtype) if isinstance(value, torch.Tensor) else float(value)

    return number


def _population_reduction(func: str, arg: Closure) -> Closure:
    if func == "sum":
        return lambda env: arg(env).sum(-1, keepdim=True)
    if func == "mean":
        return lambda env: arg(env).mean(-1, keepdim=True)
    if func == "max":
        return lambda env: arg(env).amax(-1, keepdim=True)
    if func == "min":
        return lambda env: arg(env).amin(-1, keepdim=True)
    if func == "softmax":
        return lambda env: torch.softmax(arg(env), dim=-1)
    raise TypeError(f"unknown reduction {func!r}")


def _as_tensor(value: Any, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.tensor(value, dtype=dtype, device=like.device)


def _first_tensor(values) -> torch.Tensor:
    return next(value for value in values if isinstance(value, torch.Tensor))


def _call(node: Call, args: list[Closure], dtype: torch.dtype) -> Closure:
    func = node.func
    unary = {
        "exp": torch.exp,
        "log": torch.log,
        "sqrt": torch.sqrt,
        "abs": torch.abs,
        "sign": torch.sign,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "relu": lambda x: torch.clamp_min(x, 0.0),
        "heaviside": lambda x: (x > 0).to(dtype),
        "sin": torch.sin,
        "cos": torch.cos,
    }
    if func in unary:
        function, (arg,) = unary[func], args
        return lambda env: function(arg(env))

    def tensors(env: dict) -> list[torch.Tensor]:
        values = [arg(env) for arg in args]
        like = _first_tensor(values)
        return [_as_tensor(value, like, dtype) for value in values]

    if func == "minimum":
        return lambda env: torch.minimum(*tensors(env))
    if func == "maximum":
        return lambda env: torch.maximum(*tensors(env))
    if func == "clip":
        return lambda env: _clip(*tensors(env))
    if func == "where":
        condition, when_true, when_false = (compile_node(arg, dtype) for arg in node.args)
        true_value = _numeric(when_true, node.args[1], dtype)
        false_value = _numeric(when_false, node.args[2], dtype)

        def where(env: dict) -> Any:
            test = condition(env)
            if not isinstance(test, torch.Tensor):
                return true_value(env) if test else false_value(env)
            if test.dtype != torch.bool:
                test = test != 0
            return torch.where(test, _as_tensor(true_value(env), test, dtype), _as_tensor(false_value(env), test, dtype))

        return where
    raise TypeError(f"unknown function {func!r}")


def _clip(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return torch.minimum(torch.maximum(x, low), high)


# separable expansion ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Monomial:
    """``coef * product(factors) * product(synapse variables)``.

    Every factor varies over at most one side of the synapse (its domain is ``{"post"}``,
    ``{"pre"}`` or empty); ``synapses`` lists synapse variable names, repeated for powers.
    """

    coef: float
    factors: tuple[Node, ...]
    synapses: tuple[str, ...]

    def times(self, other: "Monomial") -> "Monomial":
        return Monomial(self.coef * other.coef, self.factors + other.factors, tuple(sorted(self.synapses + other.synapses)))


def side_of(factors: tuple[Node, ...]) -> str:
    """``"post"``, ``"pre"``, ``"both"`` or ``"none"``: the synapse sides the factors vary over."""
    sides = frozenset().union(*(factor.domain for factor in factors)) if factors else frozenset()
    if sides >= _FULL:
        return "both"
    return next(iter(sides)) if sides else "none"


def expand(node: Node) -> list[Monomial] | None:
    """``node`` as a sum of separable monomials, or ``None`` when it is not separable."""
    terms = _expand(node)
    if terms is None or len(terms) > MAX_MONOMIALS:
        return None
    return [term for term in terms if term.coef != 0.0]


def _expand(node: Node) -> list[Monomial] | None:
    if not node.domain >= _FULL:
        if isinstance(node, Const):
            return [Monomial(node.value, (), ())]
        return [Monomial(1.0, (node,), ())]
    if isinstance(node, Name):
        return [Monomial(1.0, (), (node.var,))] if node.kind == "synapse" else None
    if isinstance(node, Unary):
        inner = _expand(node.operand)
        return None if inner is None else [Monomial(-term.coef, term.factors, term.synapses) for term in inner]
    if isinstance(node, Binary):
        return _expand_binary(node)
    if isinstance(node, Call) and node.func == "where" and not node.args[0].domain >= _FULL:
        condition = node.args[0]
        chosen = Call("where", (condition, Const(1.0), Const(0.0)), domain=condition.domain)
        other = Call("where", (condition, Const(0.0), Const(1.0)), domain=condition.domain)
        when_true, when_false = _expand(node.args[1]), _expand(node.args[2])
        if when_true is None or when_false is None:
            return None
        return _product([Monomial(1.0, (chosen,), ())], when_true) + _product([Monomial(1.0, (other,), ())], when_false)
    return None


def _expand_binary(node: Binary) -> list[Monomial] | None:
    if node.op == "/":
        if node.right.domain >= _FULL:
            return None
        left = _expand(node.left)
        reciprocal = Binary("/", Const(1.0), node.right, domain=node.right.domain)
        return None if left is None else _product(left, [Monomial(1.0, (reciprocal,), ())])
    if node.op == "**":
        exponent = node.right
        if not (isinstance(exponent, Const) and float(exponent.value).is_integer() and 1 <= exponent.value <= 4):
            return None
        base = _expand(node.left)
        if base is None:
            return None
        result = base
        for _ in range(int(exponent.value) - 1):
            result = _product(result, base)
            if result is None:
                return None
        return result
    left, right = _expand(node.left), _expand(node.right)
    if left is None or right is None:
        return None
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left + [Monomial(-term.coef, term.factors, term.synapses) for term in right]
    return _product(left, right)


def _product(left: list[Monomial], right: list[Monomial]) -> list[Monomial] | None:
    if len(left) * len(right) > MAX_MONOMIALS:
        return None
    return [a.times(b) for a in left for b in right]
