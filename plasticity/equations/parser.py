"""Parse equation strings into typed expression trees with a whitelist.

The text is parsed with :mod:`ast` and only whitelisted nodes are turned into
:mod:`plasticity.equations.tree` nodes; nothing a user writes is evaluated.
Every problem is an :class:`~plasticity.errors.EquationError` that names the
equation, the column and what was expected.

Two contexts exist:

* population equations (``y = tanh(I)``): names are the population's own
  variables, its parameters, ``t`` and ``dt``; reductions ``sum``, ``mean``,
  ``max``, ``min``, ``softmax`` act over its units.
* synapse equations of a rule (``w += eta * y_post * (x_pre - y_post * w)``):
  ``w`` and other unsuffixed names are synapse variables, ``_pre``/``_post``
  suffixes name unit variables on either side, plus parameters, modulators,
  ``t`` and ``dt``; reductions ``sum_post``, ``cumsum_post``, ``sum_pre``.

What the parser accepts is bounded, so that every equation it accepts compiles and runs on every
backend: at most :data:`MAX_EQUATION_LENGTH` characters, all ASCII (Python would silently read
``ｘ_pre`` as ``x_pre`` and ``ﬁ`` as ``fi``); an expression nested at most :data:`MAX_DEPTH`
operations deep (a sum of ``n`` terms is nested ``n - 1`` deep) with at most :data:`MAX_NODES`
operations and operands; numbers of magnitude at most :data:`MAX_LITERAL`. Each limit is named,
with its value, in the error that reports it.
"""

from __future__ import annotations

import ast
import unicodedata
import warnings
from dataclasses import dataclass, field
from typing import Sequence

from plasticity.equations.tree import (
    ELEMENTWISE_FUNCTIONS,
    POPULATION_REDUCTIONS,
    SYNAPSE_REDUCTIONS,
    Binary,
    Call,
    Compare,
    Const,
    Equation,
    Name,
    Node,
    Reduce,
    Unary,
)
from plasticity.errors import EquationError

__all__ = [
    "PopulationContext",
    "SynapseContext",
    "parse_equations",
    "MAX_EQUATION_LENGTH",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_LITERAL",
    "RESERVED",
]

MAX_EQUATION_LENGTH = 2000
#: Deepest nesting of operations (``+ - * / **``, unary minus, comparisons, calls) in one
#: expression. numba's compile time grows about with the square of the nesting (DEPTH_NOTE).
MAX_DEPTH = 32
#: Most operations and operands in one expression.
MAX_NODES = 128
#: Largest magnitude of a number written in an equation: every literal is a finite float32, the
#: narrowest arithmetic of any backend (larger ones became ``inf`` in generated source).
MAX_LITERAL = 1e38
#: Names every equation can read and none can assign.
RESERVED = ("t", "dt")

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_AUGMENTED = {ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*="}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_DESCRIBE = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripting",
    ast.Lambda: "a lambda",
    ast.Import: "an import",
    ast.ImportFrom: "an import",
    ast.IfExp: "a conditional expression (use where(cond, a, b))",
    ast.BoolOp: "'and'/'or' (use where())",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Starred: "a starred expression",
    ast.JoinedStr: "a string",
    ast.NamedExpr: "the walrus operator",
}
_ALLOWED = "numbers, names, + - * / **, comparisons, where(), " + ", ".join(
    f for f in ELEMENTWISE_FUNCTIONS if f != "where"
)


@dataclass(frozen=True)
class PopulationContext:
    """What a population equation may refer to."""

    params: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SynapseContext:
    """What a synapse equation may refer to (before the rule is bound to populations)."""

    params: frozenset[str] = frozenset()
    modulators: frozenset[str] = frozenset()
    synapse_vars: frozenset[str] = field(default_factory=lambda: frozenset({"w"}))


def parse_equations(
    texts: Sequence[str], context: PopulationContext | SynapseContext
) -> list[Equation]:
    """Parse ``texts`` in ``context``; raise EquationError on the first problem."""
    if isinstance(texts, str):
        texts = [texts]
    for text in texts:
        if not isinstance(text, str):
            raise EquationError(f"an equation must be a string, got {type(text).__name__}")
    targets = [_split_target(text, context) for text in texts]
    if isinstance(context, SynapseContext):
        # unsuffixed targets of a rule are synapse variables, readable by every equation of it
        extra = {var for var, level, _ in targets if level == "synapse"}
        context = SynapseContext(context.params, context.modulators, context.synapse_vars | extra)
    equations, seen = [], {}
    for text, (var, level, statement) in zip(texts, targets):
        key = (var, level)
        if key in seen:
            raise EquationError(
                f"this variable is already assigned by {seen[key]!r}; a variable is assigned once",
                text, statement.col_offset + 1,
            )
        seen[key] = text
        equations.append(_Builder(text, context).equation(statement, var, level))
    return equations


def _parse_statement(text: str) -> ast.stmt:
    if len(text) > MAX_EQUATION_LENGTH:
        raise EquationError(
            f"the equation has {len(text)} characters; the limit (MAX_EQUATION_LENGTH) is {MAX_EQUATION_LENGTH}",
            text[:60] + "...",
        )
    if not text.strip():
        raise EquationError("the equation is empty; expected 'name = expression'", text)
    _check_ascii(text)
    try:
        with warnings.catch_warnings():
            # Python warns about sloppy literals ("1if", "\\d") while parsing: refuse them as errors
            # rather than let a SyntaxWarning leak out of building a rule.
            warnings.simplefilter("error", SyntaxWarning)
            warnings.simplefilter("error", DeprecationWarning)
            module = ast.parse(text, mode="exec")
    except SyntaxError as error:
        column = error.offset if error.offset else None
        raise EquationError(f"syntax error ({error.msg}); expected 'name = expression'", text, column) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as error:
        raise EquationError(f"cannot parse the equation ({type(error).__name__})", text) from None
    if len(module.body) != 1:
        raise EquationError("expected exactly one equation per string, 'name = expression'", text)
    statement = module.body[0]
    if isinstance(statement, (ast.Assign, ast.AugAssign)):
        _check_size(statement.value, text)
    return statement


def _check_ascii(text: str) -> None:
    """Refuse non-ASCII characters: Python reads identifiers NFKC-normalised, so ``ｘ_pre`` would
    silently be ``x_pre`` and ``ﬁ`` would be ``fi``."""
    for index, character in enumerate(text):
        if not character.isascii():
            normalised = unicodedata.normalize("NFKC", character)
            reading = f" (Python would read it as {normalised!r})" if normalised != character and normalised.isascii() else ""
            raise EquationError(
                f"non-ASCII character {character!r} (U+{ord(character):04X}){reading}; "
                "equations are written in ASCII: names are letters a-z, A-Z, digits and '_'",
                text, index + 1,
            )


_OPERATIONS = (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.BoolOp, ast.IfExp)


def _check_size(value: ast.expr, text: str) -> None:
    """Refuse expressions nested deeper than MAX_DEPTH or larger than MAX_NODES (iteratively: the
    tree builder recurses). Operations and operands count; a call's function name does not."""
    nodes, deepest = 0, (0, value)
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if isinstance(node, _OPERATIONS):
            depth += 1
            if depth > deepest[0]:
                deepest = (depth, node)
        children = node.args if isinstance(node, ast.Call) else [
            child for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)
        ]
        stack.extend((child, depth) for child in children)
    if deepest[0] > MAX_DEPTH:
        raise EquationError(
            f"the expression is nested {deepest[0]} operations deep; the limit (MAX_DEPTH) is {MAX_DEPTH} "
            f"(a sum of n terms is nested n - 1 deep; split it with an intermediate variable: numba's "
            "compile time grows about with the square of the nesting)",
            text, deepest[1].col_offset + 1,
        )
    if nodes > MAX_NODES:
        raise EquationError(
            f"the expression has {nodes} operations and operands; the limit (MAX_NODES) is {MAX_NODES} "
            "(split it with intermediate variables: numba's compile time grows faster than the size)",
            text,
        )


def _split_target(text: str, context) -> tuple[str, str, ast.stmt]:
    """The assigned variable and its level, checked against the context."""
    statement = _parse_statement(text)
    if isinstance(statement, ast.Assign):
        if len(statement.targets) != 1:
            raise EquationError("chained assignment; assign one variable per equation", text, statement.col_offset + 1)
        target = statement.targets[0]
    elif isinstance(statement, ast.AugAssign):
        if type(statement.op) not in _AUGMENTED:
            raise EquationError(
                "unsupported assignment operator; expected '=', '+=', '-=' or '*='", text, statement.col_offset + 1
            )
        target = statement.target
    elif isinstance(statement, ast.Expr):
        raise EquationError("expected an assignment 'name = expression'", text, statement.col_offset + 1)
    else:
        what = _DESCRIBE.get(type(statement), type(statement).__name__)
        raise EquationError(f"{what} is not allowed; expected 'name = expression'", text, statement.col_offset + 1)
    if not isinstance(target, ast.Name):
        what = _DESCRIBE.get(type(target), type(target).__name__)
        raise EquationError(f"cannot assign to {what}; expected a variable name", text, target.col_offset + 1)
    name, column = target.id, target.col_offset + 1
    _check_identifier(name, text, column)
    if name in RESERVED:
        raise EquationError(f"{name!r} is the simulation's {'time' if name == 't' else 'time step'} and cannot be assigned", text, column)
    if name in context.params:
        raise EquationError(f"{name!r} is a parameter and cannot be assigned; parameters are constants", text, column)
    if isinstance(context, PopulationContext):
        if name.endswith(("_pre", "_post")):
            raise EquationError(
                f"{name!r}: the _pre/_post suffixes only have a meaning in synapse equations", text, column
            )
        return name, "unit", statement
    if name in context.modulators:
        raise EquationError(f"{name!r} is a modulator set from outside and cannot be assigned", text, column)
    for suffix, level in (("_post", "post"), ("_pre", "pre")):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], level, statement
    return name, "synapse", statement


def _check_identifier(name: str, text: str, column: int) -> None:
    if "__" in name:
        raise EquationError(f"{name!r}: names containing '__' are not allowed", text, column)


class _Builder:
    """Turns one parsed statement into tree nodes, checking the whitelist."""

    def __init__(self, text: str, context: PopulationContext | SynapseContext):
        self.text = text
        self.context = context
        self.synapse = isinstance(context, SynapseContext)

    def fail(self, message: str, node: ast.AST | None = None):
        column = getattr(node, "col_offset", None)
        raise EquationError(message, self.text, None if column is None else column + 1)

    def equation(self, statement: ast.stmt, var: str, level: str) -> Equation:
        if isinstance(statement, ast.Assign):
            op, target, value = "=", statement.targets[0], statement.value
        else:
            op, target, value = _AUGMENTED[type(statement.op)], statement.target, statement.value
        try:
            expr = self.build(value)
        except RecursionError:
            self.fail("the expression is nested too deeply")
        self.number(expr, value)
        allowed = {"unit": {"unit"}, "post": {"post"}, "pre": {"pre"}, "synapse": {"pre", "post"}}[level]
        extra = expr.domain - allowed
        if extra:
            owner = {"post": "post unit", "pre": "pre unit", "unit": "unit", "synapse": "synapse"}[level]
            self.fail(
                f"the right-hand side varies over {' and '.join(sorted(extra))} units but {target.id!r} "
                f"holds one value per {owner}; reduce it first (e.g. with "
                f"{'sum_pre' if 'pre' in extra else 'sum_post'}(...))",
                value,
            )
        return Equation(self.text, target.id, var, level, op, expr)

    def number(self, node: Node, source: ast.AST) -> Node:
        if node.boolean:
            self.fail("expected a number, got a comparison (use it inside where(cond, a, b))", source)
        return node

    def build(self, node: ast.AST) -> Node:
        method = getattr(self, "build_" + type(node).__name__, None)
        if method is None:
            what = _DESCRIBE.get(type(node), type(node).__name__)
            self.fail(f"{what} is not allowed in an equation; allowed: {_ALLOWED}", node)
        return method(node)

    def build_Constant(self, node: ast.Constant) -> Node:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            self.fail(f"{node.value!r} is not a number; only numeric constants are allowed", node)
        if not abs(node.value) <= MAX_LITERAL:  # an int too large for a float compares without overflow
            written = ast.get_source_segment(self.text, node) or repr(node.value)
            shown = written if len(written) <= 24 else f"{written[:12]}...({len(written)} characters)"
            self.fail(
                f"the number {shown} is out of range; numbers in an equation have a magnitude of at most "
                f"{MAX_LITERAL:g} (MAX_LITERAL: every number must be a finite float32)",
                node,
            )
        return Const(float(node.value))

    def build_Name(self, node: ast.Name) -> Node:
        name = node.id
        _check_identifier(name, self.text, node.col_offset + 1)
        if name in ELEMENTWISE_FUNCTIONS or name in POPULATION_REDUCTIONS or name in SYNAPSE_REDUCTIONS:
            self.fail(f"{name!r} is a function; call it as {name}(...)", node)
        if name == "t":
            return Name(name, "time", name)
        if name == "dt":
            return Name(name, "dt", name)
        if name in self.context.params:
            return Name(name, "param", name)
        if not self.synapse:
            if name.endswith(("_pre", "_post")):
                self.fail(f"{name!r}: the _pre/_post suffixes only have a meaning in synapse equations", node)
            return Name(name, "unit", name, domain=frozenset({"unit"}))
        if name in self.context.modulators:
            return Name(name, "global", name)
        for suffix, kind in (("_post", "post"), ("_pre", "pre")):
            if name.endswith(suffix) and len(name) > len(suffix):
                return Name(name, kind, name[: -len(suffix)], domain=frozenset({kind}))
        if name in self.context.synapse_vars:
            return Name(name, "synapse", name, domain=frozenset({"pre", "post"}))
        self.fail(
            f"unknown variable {name!r}; expected a synapse variable ({', '.join(sorted(self.context.synapse_vars))}), "
            "a parameter, a modulator, t, dt, or a unit variable with a _pre or _post suffix",
            node,
        )

    def build_UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.number(self.build(node.operand), node.operand)
        if isinstance(node.op, ast.USub):
            if isinstance(operand, Const):
                return Const(-operand.value)
            return Unary("-", operand, domain=operand.domain)
        if isinstance(node.op, ast.UAdd):
            return operand
        self.fail("only unary '-' and '+' are allowed", node)

    def build_BinOp(self, node: ast.BinOp) -> Node:
        op = _BINARY.get(type(node.op))
        if op is None:
            self.fail(f"operator {type(node.op).__name__} is not allowed; allowed: + - * / **", node)
        left = self.number(self.build(node.left), node.left)
        right = self.number(self.build(node.right), node.right)
        return Binary(op, left, right, domain=left.domain | right.domain)

    def build_Compare(self, node: ast.Compare) -> Node:
        if len(node.ops) != 1:
            self.fail("chained comparisons are not allowed; compare two values", node)
        op = _COMPARE.get(type(node.ops[0]))
        if op is None:
            self.fail("only < <= > >= == != comparisons are allowed", node)
        left = self.number(self.build(node.left), node.left)
        right = self.number(self.build(node.comparators[0]), node.comparators[0])
        return Compare(op, left, right, domain=left.domain | right.domain, boolean=True)

    def build_Call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name):
            what = _DESCRIBE.get(type(node.func), "this call")
            self.fail(f"{what} is not allowed; call a whitelisted function by name", node)
        func = node.func.id
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            self.fail(f"{func}() takes positional arguments only", node)
        if func in ELEMENTWISE_FUNCTIONS:
            expected = ELEMENTWISE_FUNCTIONS[func]
            if len(node.args) != expected:
                self.fail(f"{func}() takes {expected} argument{'s' * (expected > 1)}, got {len(node.args)}", node)
            args = tuple(self.build(arg) for arg in node.args)
            if func == "where":
                if not args[0].boolean:
                    self.fail("the first argument of where() must be a comparison", node.args[0])
                self.number(args[1], node.args[1])
                self.number(args[2], node.args[2])
            else:
                for arg, source in zip(args, node.args):
                    self.number(arg, source)
            domain = frozenset().union(*(arg.domain for arg in args))
            return Call(func, args, domain=domain)
        if func in POPULATION_REDUCTIONS or func in SYNAPSE_REDUCTIONS:
            return self.reduction(func, node)
        valid = sorted(ELEMENTWISE_FUNCTIONS) + list(SYNAPSE_REDUCTIONS if self.synapse else POPULATION_REDUCTIONS)
        self.fail(f"unknown function {func!r}; valid functions: {', '.join(valid)}", node)

    def reduction(self, func: str, node: ast.Call) -> Node:
        if len(node.args) != 1:
            self.fail(f"{func}() takes 1 argument, got {len(node.args)}", node)
        if self.synapse and func in POPULATION_REDUCTIONS:
            self.fail(
                f"{func}() reduces over a population's units; in a synapse equation use "
                f"{', '.join(SYNAPSE_REDUCTIONS)}",
                node,
            )
        if not self.synapse and func in SYNAPSE_REDUCTIONS:
            self.fail(f"{func}() only has a meaning in synapse equations; use {', '.join(POPULATION_REDUCTIONS)}", node)
        arg = self.number(self.build(node.args[0]), node.args[0])
        axis = SYNAPSE_REDUCTIONS.get(func, "unit")
        if axis not in arg.domain:
            self.fail(f"{func}() of an expression that does not vary over {axis} units", node)
        domain = arg.domain if func in ("softmax", "cumsum_post") else arg.domain - {axis}
        return Reduce(func, axis, arg, domain=domain)
