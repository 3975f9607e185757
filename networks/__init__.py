"""Ready-made models and their protocols.

Importing this package registers every built-in protocol with
:mod:`plasticity.protocols`.
"""

from plasticity.networks import pca
from plasticity.networks import dense, hopfield, modern, uhn
from plasticity.networks import predictive_coding
from plasticity.networks import motifs  # noqa: F401  (registers the motifs protocol)
from plasticity.networks import attention, mqar  # noqa: F401  (sequence memories, attention.recall)
from plasticity.networks import vector_hash  # noqa: F401  (registers vector_hash.continuum)
from plasticity.networks import learning  # noqa: F401  (registers learn.capacity)

__all__ = ["pca", "dense", "hopfield", "modern", "uhn", "predictive_coding"]
