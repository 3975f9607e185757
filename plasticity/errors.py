"""Exceptions raised by plasticity.

Every error a user can cause is raised before work starts and names what was
wrong and what was expected.
"""

from __future__ import annotations

__all__ = ["PlasticityError", "EquationError", "ConfigError", "DivergenceError", "BackendError"]


class PlasticityError(Exception):
    """Base class of every error raised by plasticity."""


class EquationError(PlasticityError, ValueError):
    """An equation (of a rule, population or projection) is invalid.

    The message names the equation, the column (1-based) and what was expected.
    """

    def __init__(self, message: str, equation: str | None = None, column: int | None = None):
        self.equation = equation
        self.column = column
        self.reason = message
        if equation is not None:
            where = f" at column {column}" if column is not None else ""
            pointer = ""
            if column is not None:
                pointer = "\n    " + equation + "\n    " + " " * max(column - 1, 0) + "^"
            message = f"in equation {equation!r}{where}: {message}{pointer}"
        super().__init__(message)


class ConfigError(PlasticityError, ValueError):
    """A parameter, TOML key or option is invalid; the message names it and the valid choices."""


class DivergenceError(PlasticityError, FloatingPointError):
    """A simulated variable became NaN or infinite; names the variable, step and trial."""

    def __init__(self, variable: str, step: int, trial: int | None, last_finite: int | None = None):
        self.variable = variable
        self.step = step
        self.trial = trial
        self.last_finite = last_finite  # the last step the state was found finite, where known
        where = f"trial {trial}" if trial is not None else "the weights shared by all trials"
        since = ""
        if last_finite is not None and last_finite < step - 1:
            since = f" (found by the check at that step; finite at step {last_finite}: it arose in steps {last_finite + 1}-{step})"
        super().__init__(f"the run diverged: {variable} is NaN or infinite at step {step}, {where}{since}")


class BackendError(PlasticityError, ValueError):
    """A backend or device is unknown or unavailable; the message lists the available ones."""
