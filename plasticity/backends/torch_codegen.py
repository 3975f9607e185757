"""Code generation for the torch backend: expression trees to tensor closures, and separable updates.

Two generators work over the trees of :mod:`plasticity.equations`:

* :func:`compile_node` turns a tree into a Python closure ``f(env) -> value`` built from torch
  operations, once, when the engine is built. The closure looks names up in ``env`` (names as
  written, ``"y_post"``; synapse reductions by their node) and broadcasts like the numpy
  reference, so the same closure serves whole vectors ``(trials, n)`` and blocks of synapses
  ``(trials, rows, pre)``. Subtrees that are plain scalars (constants, parameters, ``t``,
  ``dt``) are evaluated by the numpy reference itself, in float64.
* :func:`expand` rewrites a synapse expression as a sum of separable monomials
  ``coef * f(post) * g(pre) * s1 * s2 ...`` (``s`` synapse variables; the algebra of
  :mod:`plasticity.equations.separable`), which the engine applies
  to the weights in place with ``mul_``, ``addcmul_`` and one batched GEMM (``baddbmm_`` /
  ``addmm_``), with no temporary the size of ``W``. An expression that does not expand (a
  function of ``w``, ``cumsum_post``) returns ``None`` and is evaluated over blocks of rows.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np
import torch

from plasticity.backends.numpy_backend import evaluate
from plasticity.equations import Binary, Call, Compare, Const, Name, Node, Reduce, Unary, separable, walk
from plasticity.equations.functions import FUNCTIONS
from plasticity.equations.separable import Monomial, side_of

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
        with np.errstate(all="ignore"):  # a non-finite value is reported as divergence, as on numpy
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


def _tensors(values: list[Any], dtype: torch.dtype) -> list[torch.Tensor]:
    """Every value as a tensor, numbers on the device of the first tensor (a 0-d CPU tensor when none
    is: a function of numbers alone, as where() of a constant condition gives)."""
    like = next((value for value in values if isinstance(value, torch.Tensor)), None)
    device = like.device if like is not None else None
    return [value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=dtype, device=device)
            for value in values]


def _call(node: Call, args: list[Closure], dtype: torch.dtype) -> Closure:
    function = FUNCTIONS[node.func].torch
    if node.func == "where":
        # the parser refuses a comparison as a branch, so only the condition may be boolean
        condition, true_value, false_value = (compile_node(arg, dtype) for arg in node.args)

        def where(env: dict) -> Any:
            test = condition(env)
            if not isinstance(test, torch.Tensor):  # a plain number: only the chosen branch runs
                return true_value(env) if test else false_value(env)
            if test.dtype != torch.bool:
                test = test != 0
            return function(dtype, test, _as_tensor(true_value(env), test, dtype), _as_tensor(false_value(env), test, dtype))

        return where
    return lambda env: function(dtype, *_tensors([arg(env) for arg in args], dtype))


# separable expansion ---------------------------------------------------------------------------


def expand(node: Node) -> list[Monomial] | None:
    """``node`` as a sum of at most :data:`MAX_MONOMIALS` separable monomials with non-zero
    coefficients (:func:`plasticity.equations.separable.expand`), or ``None`` when it is not separable."""
    terms = separable.expand(node, MAX_MONOMIALS)
    if terms is None:
        return None
    return [term for term in terms if term.coef != 0.0]
