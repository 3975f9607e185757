"""The equation language: parsing, the whitelist, errors, 3Q-style forms and cost."""

import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plasticity as pl
from plasticity.equations import Binary, Name, PopulationContext, Reduce, SynapseContext, parse_equations
from plasticity.equations.parser import MAX_DEPTH, MAX_EQUATION_LENGTH, MAX_LITERAL, MAX_NODES

from backends import other_backends

SYNAPSE = SynapseContext(frozenset({"eta", "decay"}), frozenset({"m"}))
POPULATION = PopulationContext(frozenset({"beta"}))


def parse_synapse(*texts):
    return parse_equations(list(texts), SYNAPSE)


def test_oja_parses_into_a_typed_tree():
    (equation,) = parse_synapse("w += eta * y_post * (x_pre - y_post * w)")
    assert (equation.var, equation.level, equation.op) == ("w", "synapse", "+=")
    assert isinstance(equation.expr, Binary)
    names = {(n.name, n.kind, n.var) for n in pl.equations.walk(equation.expr) if isinstance(n, Name)}
    assert names == {("eta", "param", "eta"), ("y_post", "post", "y"), ("x_pre", "pre", "x"), ("w", "synapse", "w")}
    assert equation.expr.domain == frozenset({"pre", "post"})
    assert equation.expr.left.domain == frozenset({"post"})  # eta * y_post: hoistable per row


def test_rule_variables_and_reductions_have_their_levels():
    equations = parse_synapse(
        "theta_post += (y_post * y_post - theta_post) * dt",
        "a_pre = sum_post(w * y_post)",
        "w += eta * y_post * (x_pre - cumsum_post(y_post * w))",
    )
    assert [eq.level for eq in equations] == ["post", "pre", "synapse"]
    reduction = next(n for n in pl.equations.walk(equations[1].expr) if isinstance(n, Reduce))
    assert reduction.domain == frozenset({"pre"})


def test_population_reductions_collapse_units():
    (equation,) = parse_equations(["y = exp(beta * I) / sum(exp(beta * I))"], POPULATION)
    assert equation.expr.domain == frozenset({"unit"})
    assert equation.expr.right.domain == frozenset()


ERRORS = [
    # (context, equations, fragment of the message, column)
    (SYNAPSE, ["w += eta * q"], "unknown variable 'q'", 12),
    (SYNAPSE, ["w += foo(x_pre)"], "unknown function 'foo'", 6),
    (POPULATION, ["y = x_pre"], "_pre/_post suffixes only have a meaning in synapse equations", None),
    (POPULATION, ["y_post = I"], "_pre/_post suffixes only have a meaning in synapse equations", 1),
    (SYNAPSE, ["eta = 0.1"], "'eta' is a parameter and cannot be assigned", 1),
    (SYNAPSE, ["w += x_pre", "w += y_post"], "already assigned", 1),
    (SYNAPSE, ["w += (x_pre"], "syntax error", None),
    (SYNAPSE, ["w += x_pre.real"], "attribute access is not allowed", 6),
    (SYNAPSE, ["w += open(x_pre)"], "unknown function 'open'", 6),
    (SYNAPSE, ["w += (lambda: 1)()"], "call a whitelisted function by name", 6),
    (SYNAPSE, ["w += x_pre[0]"], "subscripting is not allowed", 6),
    (SYNAPSE, ["import os"], "an import is not allowed", 1),
    (SYNAPSE, ["w += __builtins__"], "names containing '__' are not allowed", 6),
    (SYNAPSE, ["w += x_pre.__class__"], "attribute access is not allowed", 6),
    (SYNAPSE, ["t = 1"], "'t' is the simulation's time and cannot be assigned", 1),
    (SYNAPSE, ["m = 1"], "modulator set from outside", 1),
    (SYNAPSE, ["w += x_pre if y_post else 0"], "conditional expression", 6),
    (SYNAPSE, ["w += x_pre > 0"], "expected a number, got a comparison", 6),
    (SYNAPSE, ["w += where(x_pre, 1, 0)"], "first argument of where() must be a comparison", 12),
    (SYNAPSE, ["theta_post = w"], "holds one value per post unit", 14),
    (SYNAPSE, ["w += sum(x_pre)"], "in a synapse equation use", 6),
    (POPULATION, ["y = sum_post(I)"], "only has a meaning in synapse equations", 5),
    (SYNAPSE, ["w += exp(x_pre, 2)"], "exp() takes 1 argument, got 2", 6),
    (SYNAPSE, ["w += x_pre // 2"], "operator FloorDiv is not allowed", 6),
    (SYNAPSE, ["w += 'a'"], "is not a number", 6),
    (SYNAPSE, ["w = x_pre; w = y_post"], "exactly one equation per string", None),
    (SYNAPSE, [""], "the equation is empty", None),
    (SYNAPSE, ["x_pre"], "expected an assignment", 1),
    (SYNAPSE, ["w //= 2"], "unsupported assignment operator", 1),
    (SYNAPSE, ["a = b = 1"], "chained assignment", 1),
]


@pytest.mark.parametrize("context, texts, fragment, column", ERRORS)
def test_bad_equations_raise_equation_errors_naming_equation_and_column(context, texts, fragment, column):
    with pytest.raises(pl.EquationError) as raised:
        parse_equations(texts, context)
    error = raised.value
    assert fragment in str(error)
    assert error.equation is not None and error.equation in texts
    assert repr(error.equation) in str(error)
    if column is not None:
        assert error.column == column
        assert f"column {column}" in str(error)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_only_ever_raises_equation_error(text):
    for context in (SYNAPSE, POPULATION):
        try:
            parse_equations([text], context)
        except pl.EquationError:
            pass


_TOKENS = st.sampled_from(
    ["w", "x_pre", "y_post", "eta", "m", "t", "dt", "+", "-", "*", "/", "**", "(", ")", ",", "<", "==",
     "where", "exp", "sum_post", "cumsum_post", "sum", "softmax", "1", "2.5", " ", "=", "+=", ".", "[", "]",
     "lambda", ":", "__x", "import", "theta_post", "clip"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS, max_size=25).map("".join), st.text(string.printable, max_size=10))
def test_token_soup_only_ever_raises_equation_error(soup, noise):
    for text in (soup, "w = " + soup, "w += " + soup + noise):
        for context in (SYNAPSE, POPULATION):
            try:
                parse_equations([text], context)
            except pl.EquationError:
                pass


def test_deep_nesting_is_an_equation_error():
    with pytest.raises(pl.EquationError):
        parse_synapse("w = " + "+".join(["x_pre"] * 1500))
    with pytest.raises(pl.EquationError, match="syntax error|nested"):
        parse_synapse("w = " + "(" * 300 + "x_pre" + ")" * 300)


def _sum(terms: int, term: str = "x_pre") -> str:
    return "+".join([term] * terms)


@pytest.mark.parametrize(
    "text, limit",
    [
        ("w += " + "-" * 400 + "x_pre", f"nested 400 operations deep; the limit (MAX_DEPTH) is {MAX_DEPTH}"),
        ("w += " + _sum(330), f"nested 329 operations deep; the limit (MAX_DEPTH) is {MAX_DEPTH}"),
        ("w += " + _sum(MAX_DEPTH + 2), f"nested {MAX_DEPTH + 1} operations deep; the limit (MAX_DEPTH) is {MAX_DEPTH}"),
        ("w += " + "tanh(" * (MAX_DEPTH + 1) + "x_pre" + ")" * (MAX_DEPTH + 1), "the limit (MAX_DEPTH) is"),
        ("w += " + "+".join(["(" + _sum(MAX_DEPTH // 2) + ")"] * 10), f"operations and operands; the limit (MAX_NODES) is {MAX_NODES}"),
        ("w += 1e400", "the number 1e400 is out of range"),
        ("w += -1e39 * x_pre", "the number 1e39 is out of range"),
        ("w += 1" + "0" * 1900, "the number 100000000000...(1901 characters) is out of range"),
        ("w += x_pre * " + "1" * 60, f"at most {MAX_LITERAL:g} (MAX_LITERAL"),
        ("w += x_pre" + " " * MAX_EQUATION_LENGTH, f"the limit (MAX_EQUATION_LENGTH) is {MAX_EQUATION_LENGTH}"),
    ],
    ids=["400 minuses", "330 terms", "depth+1", "nested tanh", "nodes", "1e400", "-1e39", "1901 digits", "60 digits", "length"],
)
def test_what_the_parser_accepts_is_bounded_and_the_error_names_the_limit(text, limit):
    """An equation past a limit would fail inside numba (a raw SyntaxError from the generated source
    at 200 nested parentheses, ``inf`` in the source, an OverflowError), or take minutes to compile."""
    with pytest.raises(pl.EquationError) as raised:
        parse_synapse(text)
    assert limit in str(raised.value)


def test_an_equation_at_every_limit_is_accepted_and_runs_on_every_backend():
    deepest = "y = " + _sum(MAX_DEPTH + 1, "I")  # nested exactly MAX_DEPTH deep
    assert len(parse_equations([deepest], POPULATION)) == 1
    largest = "y = " + "+".join(["(" + _sum(MAX_DEPTH // 2, "I") + ")"] * 4)
    nodes = 4 * (2 * (MAX_DEPTH // 2) - 1) + 3
    assert nodes <= MAX_NODES
    texts = (deepest, largest, f"y = {MAX_LITERAL!r} * I - {MAX_LITERAL!r} * I + 1e-300")
    populations = [pl.Population(2, [text, "I = 0.5"], init={"I": 0.5}, name=f"p{index}") for index, text in enumerate(texts)]
    results = {}
    for backend in ["numpy", *other_backends()]:
        simulation = pl.Simulation(pl.Network(populations), backend=backend, dtype="float64")
        simulation.advance(1)
        results[backend] = [simulation.get(f"p{index}.y") for index in range(len(texts))]
    for backend, values in results.items():
        for text, value, expected in zip(texts, values, results["numpy"]):
            np.testing.assert_allclose(value, expected, rtol=1e-12, err_msg=f"{backend}: {text}")


@pytest.mark.parametrize(
    "text, column, character",
    [("w += \uff58_pre", 6, "'\uff58' (U+FF58) (Python would read it as 'x')"),
     ("w += \ufb01_pre", 6, "'\ufb01' (U+FB01) (Python would read it as 'fi')"),
     ("w += x_pre * caf\u00e9", 17, "'\u00e9' (U+00E9); equations are written in ASCII")],
)
def test_non_ascii_names_are_refused_not_normalised(text, column, character):
    with pytest.raises(pl.EquationError) as raised:
        parse_synapse(text)
    assert raised.value.column == column
    assert f"non-ASCII character {character}" in str(raised.value)


def test_what_python_only_warns_about_is_a_syntax_error(recwarn):
    with pytest.raises(pl.EquationError, match="syntax error \\(invalid decimal literal\\)"):
        parse_synapse("w += 1if x_pre else 0")
    assert not [w for w in recwarn if issubclass(w.category, SyntaxWarning)]


def test_non_string_equation_is_an_equation_error():
    with pytest.raises(pl.EquationError, match="must be a string"):
        parse_equations([42], SYNAPSE)


# 3Q-style rules --------------------------------------------------------------------------------


def test_strict_rule_needs_exactly_three_equations():
    with pytest.raises(pl.EquationError, match="exactly three equations, got 1"):
        pl.Rule(["w += eta * y_post * x_pre"], params={"eta": 0.1}, form="strict")


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("w += eta * phi_post * x_pre / 2", "equation 3 of a strict 3Q-style rule uses division"),
        ("w += eta * tanh(phi_post) * x_pre", "equation 3 of a strict 3Q-style rule uses the function tanh()"),
        ("w += eta * phi_post * x_pre ** 2", "equation 3 of a strict 3Q-style rule uses a power"),
        ("w += eta * sum_pre(x_pre * w)", "uses the reduction sum_pre(), which is not local"),
    ],
)
def test_strict_rule_rejects_anything_but_add_subtract_multiply(bad, fragment):
    with pytest.raises(pl.EquationError) as raised:
        pl.Rule(
            ["theta_post += alpha * (y_post * y_post - theta_post)", "phi_post = y_post * (y_post - theta_post)", bad],
            params={"eta": 0.1, "alpha": 0.1},
            form="strict",
        )
    assert fragment in str(raised.value)
    assert raised.value.equation == bad


def test_relaxed_rule_allows_elementwise_functions_but_not_reductions():
    pl.Rule(
        ["a_post = tanh(y_post)", "b_pre = sigmoid(x_pre)", "w += eta * a_post * b_pre"],
        params={"eta": 0.1},
        form="relaxed",
    )
    with pytest.raises(pl.EquationError, match="reduction"):
        pl.Rule(
            ["a_post = tanh(y_post)", "b_pre = sum_post(w)", "w += eta * a_post * b_pre"],
            params={"eta": 0.1},
            form="relaxed",
        )


def test_unknown_form_is_a_config_error():
    with pytest.raises(pl.ConfigError, match="form must be one of 'free', 'strict', 'relaxed'"):
        pl.Rule(["w += x_pre"], form="3q")


@pytest.mark.parametrize(
    "equations, expected",
    [
        (["w += eta * y_post * (x_pre - y_post * w)"], dict(adds=2, multiplies=2, reads=1, writes=1)),
        (["w += eta * y_post * x_pre - decay * w"], dict(adds=2, multiplies=2, reads=1, writes=1)),
        (["e += alpha * (y_post * x_pre - e)", "w += eta * e"], dict(adds=3, multiplies=3, reads=2, writes=2)),
        (["w = x_pre * y_post"], dict(adds=0, multiplies=1, reads=0, writes=1)),
    ],
)
def test_cost_counts_work_per_synapse(equations, expected):
    cost = pl.Rule(equations, params={"eta": 0.1, "decay": 0.1, "alpha": 0.1}).cost()
    assert {key: getattr(cost, key) for key in expected} == expected
    assert cost.bytes_per_synapse(4) == 4 * (expected["reads"] + expected["writes"])


def test_per_unit_work_is_not_counted_per_synapse():
    cost = pl.Rule(["theta_post += alpha * (y_post * y_post - theta_post)", "w += eta * x_pre * theta_post"],
                   params={"eta": 0.1, "alpha": 0.1}).cost()
    assert (cost.adds, cost.multiplies) == (1, 1)  # x_pre * theta_post is per synapse; eta * x_pre is per pre unit
    assert cost.unit_operations == 5


def test_rule_init_must_name_rule_variables():
    with pytest.raises(pl.EquationError, match="no equation of the rule assigns"):
        pl.Rule(["w += x_pre"], init={"theta_post": 1.0})


def test_parameter_overrides_are_checked():
    rule = pl.Rule(["w += eta * x_pre"], params={"eta": 0.1}, name="r")
    assert rule.with_params(eta=0.5).params == {"eta": 0.5}
    with pytest.raises(pl.ConfigError, match="rule r has no parameter 'lr'; valid parameters: eta"):
        rule.with_params(lr=0.5)


@pytest.mark.parametrize("equation", ["y = 1if I else 2", 'y = "\\d"', "y = 0x1for"])
def test_sloppy_literals_are_equation_errors_and_no_warning_leaks(equation):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning, SyntaxWarning included, fails the test
        with pytest.raises(pl.EquationError, match="syntax error"):
            pl.Population(3, [equation])
