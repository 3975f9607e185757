"""Rule discovery: enumerate small rules of ``+ - *`` over local terms and score them on tasks."""

from plasticity.search.grammar import Candidate, Enumeration, Grammar, count_yielded, enumerate_rules
from plasticity.search.polynomial import Polynomial

__all__ = ["Grammar", "Candidate", "Enumeration", "enumerate_rules", "count_yielded", "Polynomial"]
