"""Projections: dense (optionally masked) weights from one population to another, with a rule."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from plasticity.errors import ConfigError, EquationError
from plasticity.init import normal
from plasticity.params import Flag, Real, check
from plasticity.population import Population
from plasticity.rule import Rule

__all__ = ["Projection"]


class Projection:
    """Weights ``W`` (post x pre) from ``pre`` to ``post``.

    Each step ``W @ pre.source`` is added to the summed input ``post.target``; with
    ``feedback=(post_var, pre_target)`` also ``W.T @ post.post_var`` to ``pre.pre_target``
    (the transposed feedback predictive coding needs). The rule's equations update the
    synapse variables in the plasticity stage; besides the populations' variables they may
    read the summed inputs this projection adds to (``I_post``, the post unit's total input
    at ``target``; the pre unit's ``feedback`` target), which are local to the neuron.

    Parameters
    ----------
    pre, post:
        The populations.
    rule:
        A :class:`~plasticity.rule.Rule`, the name of a built-in rule, or ``None`` for fixed weights.
    source:
        Variable of ``pre`` that drives ``post`` (default: the only variable of ``pre``, else ``"y"``).
    target:
        Summed input of ``post`` the drive adds to (default ``"I"``).
    feedback:
        ``(post_var, pre_target)`` for transposed feedback, or ``None``.
    params:
        Overrides of the rule's parameter defaults.
    init:
        Initial values of synapse and rule variables; ``w`` defaults to
        ``normal(std=1/sqrt(pre.n))``.
    mask:
        Boolean array (post x pre); masked synapses are zero and stay zero.
    shared:
        ``False`` (default): every trial has its own weights, shape (trials, post, pre).
        ``True``: one weight matrix for all trials (a minibatch); the rule's update is
        averaged over trials.
    name:
        The projection's name in recordings; assigned by the network when omitted.
    """

    def __init__(
        self,
        pre: Population,
        post: Population,
        rule: Rule | str | None = None,
        *,
        source: str | None = None,
        target: str = "I",
        feedback: tuple[str, str] | None = None,
        params: Mapping[str, float] | None = None,
        init: Mapping[str, Any] | None = None,
        mask: np.ndarray | None = None,
        shared: bool = False,
        name: str | None = None,
    ):
        if not isinstance(pre, Population) or not isinstance(post, Population):
            raise ConfigError("pre and post must be Population objects")
        self.pre, self.post, self.name = pre, post, name
        if isinstance(rule, str):
            from plasticity.rules import get_rule

            rule = get_rule(rule)
        if rule is not None and not isinstance(rule, Rule):
            raise ConfigError(f"rule must be a Rule, a built-in rule name or None, got {type(rule).__name__}")
        if rule is not None and params:
            rule = rule.with_params(**{key: check(f"params.{key}", value, Real()) for key, value in dict(params).items()})
        elif params:
            raise ConfigError("params were given but the projection has no rule")
        self.rule = rule
        self.source = source if source is not None else self._default_source()
        if self.source not in pre.variables:
            raise ConfigError(
                f"source {self.source!r} is not a variable of the pre population {pre.name!r}; "
                f"its variables: {', '.join(pre.variables) or 'none'}"
            )
        self.target = target
        if feedback is not None:
            if len(feedback) != 2:
                raise ConfigError("feedback must be a pair (post_var, pre_target)")
            if feedback[0] not in post.variables:
                raise ConfigError(
                    f"feedback source {feedback[0]!r} is not a variable of the post population {post.name!r}; "
                    f"its variables: {', '.join(post.variables) or 'none'}"
                )
        self.feedback = tuple(feedback) if feedback is not None else None
        self.shared = check("shared", shared, Flag())
        self.init = {"w": normal(1.0 / np.sqrt(pre.n))}
        if rule is not None:
            self.init.update(rule.init)
        self.init.update(dict(init or {}))
        valid = rule.variables() if rule is not None else ["w"]
        unknown = set(self.init) - set(valid)
        if unknown:
            raise ConfigError(
                f"init names {', '.join(sorted(unknown))}, which the projection does not have; "
                f"its variables: {', '.join(valid)}"
            )
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (post.n, pre.n):
                raise ConfigError(f"mask must have shape (post, pre) = {(post.n, pre.n)}, got {mask.shape}")
            mask = mask.astype(bool)
        self.mask = mask
        self._bind()

    def _default_source(self) -> str:
        if len(self.pre.variables) == 1:
            return self.pre.variables[0]
        if "y" in self.pre.variables:
            return "y"
        raise ConfigError(
            f"the pre population {self.pre.name!r} has several variables ({', '.join(self.pre.variables)}); "
            "name the one that drives the projection with source="
        )

    def _bind(self) -> None:
        """Check the rule's _pre/_post names against the populations."""
        if self.rule is None:
            return
        for side, population in (("pre", self.pre), ("post", self.post)):
            owned = {eq.var for eq in self.rule.parsed if eq.level == side}
            for var in owned & set(population.variables):
                raise EquationError(
                    f"rule variable {var}_{side} has the name of a variable of the {side} population "
                    f"{population.name!r}; rename one of them"
                )
            readable = set(population.variables) | self._own_summed(side)
            for var in self.rule.unit_reads(side):
                if var not in readable:
                    equation = next(eq for eq in self.rule.parsed if f"{var}_{side}" in eq.text)
                    raise EquationError(
                        f"unknown variable {var}_{side}: the {side} population {population.name!r} has no "
                        f"variable {var!r}; its variables: {', '.join(population.variables) or 'none'}"
                        f" (a rule may also read the summed input its projection adds to: "
                        f"{', '.join(sorted(self._own_summed(side))) or 'none'})",
                        equation.text,
                        equation.text.find(f"{var}_{side}") + 1,
                    )

    def _own_summed(self, side: str) -> set[str]:
        """Summed inputs this projection adds to on ``side``; its rule may read them (``I_post``; on a
        recurrent projection, whose pre population is its post one, also ``I_pre``)."""
        own = {self.feedback[1]} if side == "pre" and self.feedback is not None else set()
        if side == "post" or self.pre is self.post:
            own.add(self.target)
        return own

    @property
    def variables(self) -> list[str]:
        """Synapse and rule variables held by the projection, as written (``w``, ``theta_post``)."""
        return self.rule.variables() if self.rule is not None else ["w"]

    @property
    def synapse_variables(self) -> list[str]:
        """Variables with one value per synapse (``w`` and any trace)."""
        return [var for var in self.variables if not var.endswith(("_pre", "_post"))]

    def variable_shape(self, name: str, trials: int) -> tuple[int, ...]:
        """Shape of projection variable ``name`` in a simulation of ``trials`` trials."""
        if name.endswith("_post"):
            return (trials, self.post.n)
        if name.endswith("_pre"):
            return (trials, self.pre.n)
        return (self.post.n, self.pre.n) if self.shared else (trials, self.post.n, self.pre.n)

    def __repr__(self) -> str:
        rule = self.rule.name if self.rule is not None else None
        return f"Projection({self.pre.name!r} -> {self.post.name!r}, rule={rule!r}, name={self.name!r})"
