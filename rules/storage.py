"""Storage rules of auto-associative memories: Hebbian, Storkey, pseudo-inverse (projection).

A memory presents each pattern to its units, one per step, and the storage rule writes the
recurrent couplings from what is local to a synapse. Besides the pattern (``x``, what a unit
sends, and ``y``, its activity; both the pattern while it is stored), a memory's units offer
``I``, the local field from the couplings as they are (the summed input of the same network's
drive), and ``n``, the number of units. On a recurrent projection a rule reads both ends'
fields (``I_post``, ``I_pre``). Self-couplings are masked to zero.

References
----------
- J. J. Hopfield (1982), Neural networks and physical systems with emergent collective
  computational abilities. PNAS 79:2554-2558.
- A. Storkey (1997), Increasing the capacity of a Hopfield network without sacrificing
  functionality. ICANN 1997, LNCS 1327:451-456.
- L. Personnaz, I. Guyon, G. Dreyfus (1985), Information storage and retrieval in spin-glass
  like neural networks. J. Physique Lett. 46:L359-L365; I. Kanter, H. Sompolinsky (1987),
  Associative recall of memory without errors. Phys. Rev. A 35:380-392.
- T. N. E. Greville (1960), Some applications of the pseudoinverse of a matrix. SIAM Review
  2:15-22 (the recursion that adds one pattern at a time).
"""

from plasticity.rule import Rule
from plasticity.rules.hebbian import HEBB

__all__ = ["HEBBIAN", "STORKEY", "PSEUDOINVERSE", "STORAGE_RULES"]

HEBBIAN = Rule(
    HEBB.equations,
    params={"eta": 1.0, "decay": 0.0},
    name="hebbian",
    description=(
        "Storage rule: the library's hebb with its storage parameters (eta = 1, no decay), so the "
        "couplings are the integers J = sum_mu xi_mu xi_mu^T: Hopfield's W = J / N up to the "
        "factor N, which leaves sign dynamics unchanged and keeps every field an exact integer."
    ),
    reference="Hopfield (1982), PNAS 79:2554-2558",
)

STORKEY = Rule(
    ["w += (x_post * x_pre - x_post * (I_pre - w * x_post) - (I_post - w * x_pre) * x_pre) / n_post"],
    name="storkey",
    description=(
        "Storage rule: Storkey's incremental rule w_ij += (xi_i xi_j - xi_i h_ji - h_ij xi_j) / N over "
        "the local fields h_ij = sum_{k != i, j} w_ik xi_k = I_i - w_ij xi_j (I is the field of the "
        "couplings before the pattern is added); stores more patterns than Hebbian storage."
    ),
    reference="Storkey (1997), ICANN, LNCS 1327:451-456",
)

PSEUDOINVERSE = Rule(
    [
        "e_post = x_post - I_post - d_post * x_post",
        "e_pre = x_pre - I_pre - d_pre * x_pre",
        "q_post = sum_pre(e_pre * e_pre)",
        "q_pre = sum_post(e_post * e_post)",
        "w += where(q_post > tol, e_post * e_pre / q_post, 0)",
        "d_post += where(q_post > tol, e_post * e_post / q_post, 0)",
        "d_pre += where(q_pre > tol, e_pre * e_pre / q_pre, 0)",
    ],
    params={"tol": 1e-9},
    name="pseudoinverse",
    description=(
        "Storage rule: the projection (pseudo-inverse) rule W = X^+ X with the diagonal removed, "
        "added one pattern at a time by Greville's recursion: the residual e = xi - W xi of a new "
        "pattern (d holds the diagonal that the couplings' mask removes, q = |e|^2 at either end) "
        "adds e e^T / |e|^2. Not "
        "local (it sums over units); memories store it by an exact batch fast path and test the "
        "equations against it. Every stored pattern is a fixed point up to load ~0.5 (1 with the diagonal)."
    ),
    reference="Personnaz, Guyon & Dreyfus (1985), J. Physique Lett. 46:L359; Greville (1960), SIAM Rev. 2:15",
)

STORAGE_RULES = (HEBBIAN, STORKEY, PSEUDOINVERSE)
