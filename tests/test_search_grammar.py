"""The rule grammar: exact polynomials, counting, enumeration and deduplication (plasticity.search)."""

from fractions import Fraction

import pytest

from plasticity import ConfigError, EquationError, Rule
from plasticity.equations import SynapseContext, parse_equations
from plasticity.search import Grammar, Polynomial, count_yielded, enumerate_rules
from plasticity.search.grammar import LEARNING_RATE
from tests.reference import expression_trees


def polynomial(text, modulators=()):
    (equation,) = parse_equations([f"w += {text}"], SynapseContext(frozenset({"eta"}), frozenset(modulators)))
    return Polynomial.from_node(equation.expr)


def test_polynomial_expands_products_and_collects_terms():
    oja = polynomial("y_post * (x_pre - y_post * w)")
    assert oja == polynomial("x_pre * y_post - w * y_post * y_post")
    assert oja.terms == {(("x_pre", 1), ("y_post", 1)): 1, (("w", 1), ("y_post", 2)): -1}
    assert polynomial("(x_pre + 1) * (x_pre - 1)") == polynomial("x_pre * x_pre - 1")
    assert polynomial("x_pre - x_pre").is_zero()
    assert polynomial("-(w - 2) * 3") == polynomial("6 - 3 * w")
    assert polynomial("x_pre ** 2") == polynomial("x_pre * x_pre")


def test_coefficients_are_exact_rationals():
    assert polynomial("0.1 * w + 0.2 * w") == polynomial("0.3 * w")  # 0.1 + 0.2 != 0.3 in floats
    assert polynomial("0.1 * w").terms[(("w", 1),)] == Fraction(1, 10)


def test_normalised_polynomials_equal_up_to_a_positive_factor_only():
    delta = polynomial("(target_post - y_post) * x_pre")
    assert polynomial("2 * (target_post - y_post) * x_pre").normalized() == delta.normalized()
    assert polynomial("(y_post - target_post) * x_pre").normalized() != delta.normalized()


def test_non_polynomials_are_refused():
    with pytest.raises(EquationError, match="not a polynomial"):
        polynomial("tanh(x_pre) * y_post")
    with pytest.raises(EquationError, match="not a polynomial"):
        polynomial("x_pre / y_post")


def test_substitution_of_definitions():
    error = polynomial("e_post * x_pre").substitute({"e_post": polynomial("target_post - y_post")})
    assert error == polynomial("(target_post - y_post) * x_pre")


@pytest.mark.parametrize("max_operations, operations", [(0, "+-*"), (1, "+-*"), (2, "+-*"), (2, "*"), (3, "-*")])
def test_counts_equal_the_trees_written_out(max_operations, operations):
    grammar = Grammar(("x_pre", "y_post", "w"), constants=(1,), operations=tuple(operations), max_operations=max_operations)
    trees = expression_trees(["x_pre", "y_post", "w", "1"], tuple(operations), max_operations)
    assert count_yielded(grammar) == {1: len(trees)}


@pytest.mark.parametrize("terms, constants, max_operations", [
    (("x_pre", "y_post", "w"), (1,), 2),
    (("x_pre", "y_post", "target_post", "w"), (), 2),
    (("x_pre", "y_post", "w"), (0.5, -1), 2),
])
def test_deduplication_keeps_one_rule_per_distinct_update(terms, constants, max_operations):
    """The enumerator combines only distinct sub-expressions; every tree written out one by one
    (the slow twin) gives the same set of normalised update polynomials."""
    grammar = Grammar(terms, constants=constants, max_operations=max_operations)
    leaves = list(terms) + [f"({c!r})" for c in map(float, constants)]
    expected = {polynomial(tree).normalized() for tree in expression_trees(leaves, "+-*", max_operations)}
    expected.discard(Polynomial())
    found = enumerate_rules(grammar)
    assert {candidate.polynomial for candidate in found.candidates} == expected
    assert len(found.candidates) == len(expected)
    for candidate in found.candidates:
        assert update_polynomial(candidate.rule(0.1)) == candidate.polynomial


def update_polynomial(rule):
    """The normalised polynomial of a rule's weight update, its auxiliaries substituted, as the
    engine would evaluate its equations in order."""
    values = {}
    for equation in rule.parsed[:-1]:
        values[equation.target] = Polynomial.from_node(equation.expr).substitute(values)
    final = rule.parsed[-1]
    assert final.target == "w" and final.op == "+="
    return Polynomial.from_node(final.expr).substitute({**values, LEARNING_RATE: Polynomial.constant(1)}).normalized()


def test_rules_of_several_equations_substitute_their_auxiliaries():
    grammar = Grammar(("x_pre", "y_post", "w"), constants=(), operations=("-", "*"), max_operations=1, max_equations=3)
    found = enumerate_rules(grammar)
    assert found.yielded == count_yielded(grammar)
    assert found.yielded[1] == 3 + 9 * 2 and found.yielded[2] == 21 * (4 + 16 * 2)
    by_size = {}
    for candidate in found.candidates:
        by_size.setdefault(len(candidate.equations), []).append(candidate)
        assert update_polynomial(candidate.rule(0.1)) == candidate.polynomial
        assert candidate.strict == (len(candidate.equations) == 3)
    # Oja needs 3 operations in one equation, but 1 per equation in three: y*y, then q1*w, x*y - q2
    oja = polynomial("y_post * (x_pre - y_post * w)").normalized()
    (match,) = [c for c in found.candidates if c.polynomial == oja]
    assert len(match.equations) == 3 and match.strict
    rule = match.rule(0.01)
    assert rule.form == "strict" and rule.variables()[1:] == [match.equations[0].split(" ")[0], match.equations[1].split(" ")[0]]
    # every polynomial of one equation is kept in its one-equation form
    assert all(len(c.equations) == 1 for c in found.candidates[: len(by_size[1])])
    assert len({c.polynomial for c in found.candidates}) == len(found.candidates)


def test_auxiliaries_live_where_their_terms_do():
    grammar = Grammar(("x_pre", "y_post", "w"), constants=(), operations=("*",), max_operations=1, max_equations=2)
    texts = {c.equations[0] for c in enumerate_rules(grammar).candidates if len(c.equations) == 2}
    assert "q1_post = y_post * y_post" in texts and "q1_pre = x_pre * x_pre" in texts
    assert "q1 = x_pre * y_post" in texts and "q1 = w * w" in texts


def test_a_grammar_beyond_its_limit_is_refused_with_its_count():
    grammar = Grammar(("x_pre", "y_post", "w"), max_operations=3, limit=1000)
    with pytest.raises(ConfigError, match=r"would yield 35,764 rules .* more than its limit of 1,000"):
        enumerate_rules(grammar)
    assert len(enumerate_rules(Grammar(("x_pre",), max_operations=1, limit=5), force=True).candidates) == 6  # x, 1, x + 1, x - 1, 1 - x, x * x


@pytest.mark.parametrize("table, message", [
    ({"terms": []}, "yields no rule"),
    ({}, "grammar.terms is missing"),
    ({"terms": ["x_pre"], "operations": ["/"]}, "'/' is not allowed"),
    ({"terms": ["x_pre"], "max_operations": 9}, r"max_operations must be an integer in \[0, 6\]"),
    ({"terms": ["x_pre"], "max_equations": 0}, r"max_equations must be an integer in \[1, 3\]"),
    ({"terms": ["x_pre"], "max_equations": 2.0}, "max_equations must be an integer"),
    ({"terms": ["x_pre", "x_pre"]}, "must be distinct"),
    ({"terms": ["eta"]}, "reserved"),
    ({"terms": ["q1_post"]}, "reserved"),
    ({"terms": ["x pre"]}, "is not a name"),
    ({"terms": ["x_pre"], "constants": [float("nan")]}, "finite numbers"),
    ({"terms": ["x_pre"], "limit": 0}, "limit must be a positive integer"),
    ({"terms": ["x_pre"], "depth": 2}, "unknown key 'depth'; valid keys: terms, constants"),
])
def test_bad_grammars_are_clear_errors(table, message):
    with pytest.raises(ConfigError, match=message):
        Grammar.from_table(table)
