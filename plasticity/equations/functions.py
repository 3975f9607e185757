"""The elementwise functions of the equation language and what each backend runs for them.

One row per function: its number of arguments (the parser's
:data:`~plasticity.equations.tree.ELEMENTWISE_FUNCTIONS` is read from here), the numpy
implementation (the reference, :mod:`plasticity.backends.numpy_backend`), the source the numba
generator writes (:mod:`plasticity.backends.numba_source`) and the torch implementation
(:mod:`plasticity.backends.torch_codegen`). A function added here is added to every backend at
once; the cross-backend tests then check the three agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["ElementwiseFunction", "FUNCTIONS"]


@dataclass(frozen=True)
class ElementwiseFunction:
    """One elementwise function.

    ``numba`` is a template of a Python expression in a generated kernel: ``{0}``, ``{1}``, ``{2}``
    stand for the arguments' expressions, ``{tanh}`` for the kernel's tanh (a float32 rational
    approximation or ``np.tanh``), ``{zero}``, ``{half}`` and ``{one}`` for constants in the
    kernel's dtype. ``torch(dtype, *args)`` computes it on tensors whose arithmetic runs in
    ``dtype`` (the arguments of a function of several arguments are all tensors).
    """

    name: str
    arity: int
    numpy: Callable[..., Any]
    numba: str
    torch: Callable[..., Any]


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


_TABLE = [
    ElementwiseFunction("exp", 1, np.exp, "np.exp({0})", lambda dtype, x: x.exp()),
    ElementwiseFunction("log", 1, np.log, "np.log({0})", lambda dtype, x: x.log()),
    ElementwiseFunction("sqrt", 1, np.sqrt, "np.sqrt({0})", lambda dtype, x: x.sqrt()),
    ElementwiseFunction("abs", 1, np.abs, "abs({0})", lambda dtype, x: x.abs()),
    ElementwiseFunction("sign", 1, np.sign, "np.sign({0})", lambda dtype, x: x.sign()),
    ElementwiseFunction("tanh", 1, np.tanh, "{tanh}({0})", lambda dtype, x: x.tanh()),
    ElementwiseFunction(
        "sigmoid", 1, _sigmoid, "({half} * ({tanh}({half} * {0}) + {one}))", lambda dtype, x: x.sigmoid()
    ),
    ElementwiseFunction("relu", 1, lambda x: np.maximum(x, 0.0), "max({0}, {zero})", lambda dtype, x: x.clamp_min(0.0)),
    ElementwiseFunction(
        "heaviside", 1, lambda x: np.where(x > 0, 1.0, 0.0), "({one} if {0} > {zero} else {zero})",
        lambda dtype, x: (x > 0).to(dtype),
    ),
    ElementwiseFunction("sin", 1, np.sin, "np.sin({0})", lambda dtype, x: x.sin()),
    ElementwiseFunction("cos", 1, np.cos, "np.cos({0})", lambda dtype, x: x.cos()),
    ElementwiseFunction("minimum", 2, np.minimum, "min({0}, {1})", lambda dtype, x, y: x.minimum(y)),
    ElementwiseFunction("maximum", 2, np.maximum, "max({0}, {1})", lambda dtype, x, y: x.maximum(y)),
    ElementwiseFunction(
        "clip", 3, np.clip, "min(max({0}, {1}), {2})", lambda dtype, x, low, high: x.maximum(low).minimum(high)
    ),
    # the torch backend evaluates only the branch chosen by a condition that is a plain number
    # and hands this a boolean tensor (see torch_codegen)
    ElementwiseFunction("where", 3, np.where, "({1} if {0} else {2})", lambda dtype, test, a, b: a.where(test, b)),
]

#: Every elementwise function by name, in the order the parser lists them.
FUNCTIONS: dict[str, ElementwiseFunction] = {function.name: function for function in _TABLE}
