"""Vector-HaSH: a scaffold memory of grid and place cells with a sensory layer, on the engine, and
the ``vector_hash.continuum`` protocol.

Chandra, Sharma, Chaudhuri & Fiete (2025), "Episodic and associative memory from spatial scaffolds
in the hippocampus", Nature 638:739-751 (bioRxiv 2023.11.28.568960). The construction follows the
authors' code (``src/assoc_utils_np.py``, ``src/assoc_utils_np_2D.py``, ``src/senstranspose_utils.py``
of their VectorHaSH repository):

* **Grid modules** with periods ``lambdas`` (default 3, 4, 5): module k is a one-hot code on a
  lambda_k x lambda_k torus, and the grid state at position (x, y) of a (prod lambda)^2 square is
  the concatenation of the modules' codes (x mod lambda_k, y mod lambda_k). With pairwise coprime
  periods every position has its own grid state (Chinese remainder theorem): 60^2 = 3600 scaffold
  states in Ng = 9 + 16 + 25 = 50 grid cells.
* **Place cells**: p = relu(W_pg g - threshold), W_pg a fixed random Gaussian projection with
  about 60 % of its synapses kept (the authors prune round(0.4 Np Ng) synapses drawn with
  replacement), threshold 0.5. The place to grid weights W_gp are learned over every scaffold
  state (the authors' Hebbian W_gp = G^T P / S; any storage rule works) and read out through a
  module-wise winner-take-all, so the grid-place loop is an attractor whose fixed points are the
  scaffold states.
* **Sensory layer**: heteroassociation between sensory patterns and the place states of the first
  P scaffold states, sensory to place (W_ps) and place to sensory (W_sp), by pseudo-inverse as in
  the paper (W_ps = P_P S_P^+, W_sp = S_P P_P^+) or by any storage rule a user writes (``hebbian``:
  sums of outer products).
* **Recall** of a sensory cue s: p = relu(W_ps s) (threshold 0), g = module-wise winner of
  W_gp p, p = relu(W_pg g - threshold) (``iterations`` times round the grid-place loop), and the
  sensory output sign(W_sp p).

On the engine the model is three networks of populations and projections: the *encoder*
(``sensory`` to ``place``), the *scaffold* (``place`` to one population per grid module and back)
and the *decoder* (``place`` to ``sensory``); a recall passes the place state from one to the next.
The module-wise winner-take-all is a population reduction: a grid cell is active when its input is
positive and the largest of its module (``g = where(I > 0, where(I >= max(I), 1, 0), 0)``; a module
with no input stays silent). Storage presents the patterns one per step to a storage rule on the
engine; the batch forms of the library's ``pseudoinverse`` and ``hebbian`` rules (a pseudo-inverse
is not local) are registered fast paths, ``vector_hash.heteroassociation.*``, with their twins in
``tests/reference.py``.

The memory continuum: while P <= Np the place states of the stored patterns are linearly
independent and every pattern is recalled exactly from a clean cue; past Np the place to sensory
map is a least-squares projection and recall degrades smoothly (overlap about
erf(sqrt(Np / (2 (P - Np)))) for random patterns) instead of collapsing as a Hopfield network does
past 0.14 N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Sequence

import numpy as np
import scipy.linalg
import xarray as xr

from plasticity.backends.runtime import Runtime, fast_path_replacing, register_fast_path, resolve
from plasticity.errors import ConfigError, EquationError
from plasticity.network import Network
from plasticity.networks._assoc import common_patterns, flip_bits, trial_generators
from plasticity.networks.memory_fast_paths import gram_cholesky, gram_lower
from plasticity.params import Choice, Int, Real, RuleSpec, Sizes, check
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.protocols import protocol
from plasticity.rule import Rule
from plasticity.rules.storage import HEBBIAN, PSEUDOINVERSE
from plasticity.simulation import Simulation

__all__ = [
    "LAMBDAS",
    "CUES",
    "STORE_STAGES",
    "check_lambdas",
    "scaffold_states",
    "place_weights",
    "association_network",
    "check_storage",
    "heteroassociate",
    "encoder_network",
    "scaffold_network",
    "replay_network",
    "shift_weights",
    "decoder_network",
    "mutual_information_per_bit",
    "Recall",
    "VectorHaSH",
    "continuum",
    "sequence",
]

#: The paper's grid periods: 3600 scaffold states in 50 grid cells.
LAMBDAS = (3, 4, 5)
#: How a cue is corrupted: a fraction of its bits flipped, or a fraction of its units set to 0.
CUES = ("noise", "partial")
#: Stages of a storage step: the drive (rules such as Storkey's read it), then the rule.
STORE_STAGES = ("drive", "plasticity")
#: The module-wise winner-take-all of a grid module, a reduction over the module's units.
WINNER_TAKE_ALL = "g = where(I > 0, where(I >= max(I), 1, 0), 0)"

#: Most values (trials x units) of one recall batch, so a batch of cues stays a few tens of MB.
_BATCH_VALUES = 1 << 23


# ----------------------------------------------------------------------------- the scaffold


def check_lambdas(lambdas: Any) -> list[int]:
    """``lambdas`` as a list of grid periods (each 2..64, at most 6 modules), pairwise coprime.

    Periods with a common factor give fewer scaffold states than (prod lambda)^2: the error says
    which pair and how many states there are (lcm(lambdas)^2)."""
    periods = check("lambdas", lambdas, Sizes(2, 64, 1, 6))
    for i, a in enumerate(periods):
        for b in periods[i + 1:]:
            if math.gcd(a, b) != 1:
                distinct = math.lcm(*periods) ** 2
                raise ConfigError(
                    f"lambdas must be pairwise coprime; got {periods}: gcd({a}, {b}) = {math.gcd(a, b)}, so the "
                    f"scaffold has lcm(lambdas)^2 = {distinct} distinct grid states, not (prod lambdas)^2 = "
                    f"{math.prod(periods) ** 2}"
                )
    return periods


def scaffold_states(lambdas: Sequence[int]) -> np.ndarray:
    """The (S, Ng) one-hot grid states, S = (prod lambda)^2, Ng = sum lambda^2, float32.

    Row x * L + y (L = prod lambda) is the state at position (x, y): in module k (its cells after
    those of the modules before it) the cell (x mod lambda_k) * lambda_k + (y mod lambda_k) is on,
    as the authors' ``gen_gbook_2d``."""
    periods = check_lambdas(lambdas)
    side = math.prod(periods)
    x, y = np.divmod(np.arange(side * side), side)
    states = np.zeros((side * side, sum(p * p for p in periods)), dtype=np.float32)
    offset = 0
    for period in periods:
        states[np.arange(side * side), offset + (x % period) * period + (y % period)] = 1.0
        offset += period * period
    return states


def place_weights(rng: np.random.Generator, n_place: int, n_grid: int, connectivity: float) -> np.ndarray:
    """Fixed random grid to place weights (n_place, n_grid), float64: Gaussian, with
    round((1 - connectivity) n_place n_grid) synapses (drawn with replacement) set to zero, as the
    authors prune theirs (connectivity 0.6 keeps about exp(-0.4) = 67 % of the synapses)."""
    weights = rng.standard_normal((n_place, n_grid))
    pruned = int(round((1.0 - connectivity) * n_place * n_grid))
    weights[rng.integers(0, n_place, size=pruned), rng.integers(0, n_grid, size=pruned)] = 0.0
    return weights


def _module_sizes(lambdas: Sequence[int]) -> list[int]:
    return [p * p for p in lambdas]


# ----------------------------------------------------------------------------- the networks


def _storage_rule(rule: Any, name: str = "storage") -> Rule:
    """``rule`` as a Rule that can store an association: it must write the weights ``w``."""
    rule = check(name, rule, RuleSpec())
    if not any(eq.var == "w" and eq.level == "synapse" for eq in rule.parsed):
        raise EquationError(
            f"{name} rule {rule.name or '(unnamed)'} has no equation for the weights w, so it cannot store "
            f"associations; a storage rule writes w (e.g. 'w += y_post * x_pre'); its equations: "
            f"{'; '.join(rule.equations)}"
        )
    return rule


_OFFERED = "x_pre (the pattern the pre units send) and y_post (the pattern of the post units) while a pair is stored"


def association_network(pre: str, n_pre: int, post: str, n_post: int, rule: Any) -> Network:
    """What storage runs: populations ``pre`` and ``post`` (variables ``x`` and ``y``, clamped to a
    pair of patterns while it is stored) and the shared projection ``{pre}_to_{post}`` whose storage
    ``rule`` learns the association. A rule that reads what the layers do not offer is an
    EquationError naming the equation."""
    rule = _storage_rule(rule)
    first = Population(n_pre, [], init={"x": 0.0, "y": 0.0}, name=pre)
    second = Population(n_post, [], init={"x": 0.0, "y": 0.0}, name=post)
    try:
        projection = Projection(first, second, rule, source="x", init={"w": 0.0}, shared=True, name=f"{pre}_to_{post}")
    except EquationError as error:
        raise EquationError(f"{error.reason}; Vector-HaSH's layers offer {_OFFERED}", error.equation, error.column) from None
    return Network([first, second], [projection])


def encoder_network(w_ps: np.ndarray) -> Network:
    """Sensory to place, for recall: population ``sensory`` (``x``, the cue), population ``place``
    (``y = relu(I)``) and the fixed projection ``sensory_to_place`` (W_ps, shared by every cue)."""
    sensory = Population(w_ps.shape[1], [], init={"x": 0.0}, name="sensory")
    place = Population(w_ps.shape[0], ["y = relu(I)"], init={"y": 0.0}, name="place")
    return Network([sensory, place], [Projection(sensory, place, None, source="x", init={"w": w_ps}, shared=True,
                                                 name="sensory_to_place")])


def decoder_network(w_sp: np.ndarray) -> Network:
    """Place to sensory, for recall: population ``place`` (``x``, the place state), population
    ``sensory`` (``y = sign(I)``) and the fixed projection ``place_to_sensory`` (W_sp)."""
    place = Population(w_sp.shape[1], [], init={"x": 0.0}, name="place")
    sensory = Population(w_sp.shape[0], ["y = sign(I)"], init={"y": 0.0}, name="sensory")
    return Network([place, sensory], [Projection(place, sensory, None, source="x", init={"w": w_sp}, shared=True,
                                                 name="place_to_sensory")])


def scaffold_network(lambdas: Sequence[int], w_pg: np.ndarray, w_gp: np.ndarray, threshold: float) -> Network:
    """The grid-place loop: population ``place`` (``x = relu(I - threshold)``) and one population per
    grid module, ``grid0``, ``grid1``, ... (``g``: the module-wise winner-take-all of its input), with
    fixed projections ``place_to_grid{k}`` (rows of W_gp) and ``grid{k}_to_place`` (columns of W_pg).
    One step updates both sides from each other's previous state, so a place state reaches the
    grid in one step and comes back as a place state in the next."""
    place = Population(w_pg.shape[0], ["x = relu(I - threshold)"], init={"x": 0.0}, params={"threshold": threshold},
                       name="place")
    modules, projections, offset = [], [], 0
    for k, size in enumerate(_module_sizes(lambdas)):
        module = Population(size, [WINNER_TAKE_ALL], init={"g": 0.0}, name=f"grid{k}")
        modules.append(module)
        projections.append(Projection(place, module, None, source="x", init={"w": w_gp[offset:offset + size]},
                                      shared=True, name=f"place_to_grid{k}"))
        projections.append(Projection(module, place, None, source="g", init={"w": w_pg[:, offset:offset + size]},
                                      shared=True, name=f"grid{k}_to_place"))
        offset += size
    return Network([place, *modules], projections)


# ----------------------------------------------------------------------------- storage


def check_storage(rule: Any, runtime: Runtime, name: str = "storage") -> Rule:
    """``rule`` as a storage Rule this memory can run on ``runtime``: one with a registered batch form
    (the library's ``pseudoinverse`` and ``hebbian``), or one the engine runs between two layers."""
    rule = _storage_rule(rule, name)
    if fast_path_replacing("vector_hash.heteroassociation", rule, runtime.backend) is None:
        association_network("pre", 2, "post", 2, rule)
    return rule


def heteroassociate(pre_name: str, pre: np.ndarray, post_name: str, post: np.ndarray, rule: Rule,
                    runtime: Runtime, epochs: int = 1) -> np.ndarray:
    """The weights (post units, pre units), float64, with which ``rule`` associates the rows of ``pre``
    (P, pre units) with those of ``post`` (P, post units) in ``epochs`` passes: by the rule's registered
    batch form, or on the engine, presenting the pairs one per step to :func:`association_network`
    (pre ``x`` and post ``y`` clamped to the pair). The library's ``pseudoinverse`` (Greville's recursion for an
    autoassociative memory) stands here for its batch form W = Y^T (X^T)^+, which only its fast path
    computes: between two layers the recursion needs the projector onto the stored pre patterns,
    which no synapse of the projection holds."""
    batch = fast_path_replacing("vector_hash.heteroassociation", rule, runtime.backend)
    if batch is not None:
        return runtime.host(batch(runtime.array(pre, "float64"), runtime.array(post, "float64"), epochs)).astype(np.float64)
    network = association_network(pre_name, pre.shape[1], post_name, post.shape[1], rule)
    simulation = Simulation(network, trials=1, backend=runtime.backend, dtype=runtime.dtype, device=runtime.device)
    pre_steps, post_steps = np.tile(pre[:, None, :], (epochs, 1, 1)), np.tile(post[:, None, :], (epochs, 1, 1))
    simulation.advance(pre.shape[0] * epochs, inputs={f"{pre_name}.x": pre_steps, f"{post_name}.y": post_steps},
                       stages=STORE_STAGES)
    return simulation.get(f"{pre_name}_to_{post_name}.w").astype(np.float64)


_PSEUDOINVERSE = dict(
    description="heteroassociative weights W = Y^T (X^T)^+ (post patterns Y, pre patterns X as rows) by "
    "Cholesky factors of the smaller Gram matrix (a pseudo-inverse: not local)",
    twin="tests/reference.py vector_hash_pseudoinverse (numpy.linalg.pinv)",
    replaces=PSEUDOINVERSE,
)


@register_fast_path("vector_hash.heteroassociation.pseudoinverse", ("numba", "numpy"), **_PSEUDOINVERSE)
def _pseudoinverse_numpy(pre: np.ndarray, post: np.ndarray, epochs: int) -> np.ndarray:
    """W (post units, pre units) with W x_mu = y_mu for every pair when the x_mu are independent,
    the least-squares map otherwise (presenting the pairs again changes nothing: ``epochs`` is moot). With X (P, n) of full rank, X^+ = (X^T X)^-1 X^T (P <= n) or
    X^T (X X^T)^-1 (P > n): one Gram matrix and a Cholesky solve, several times faster than an SVD.
    Rank-deficient X (repeated patterns) goes through numpy's SVD pseudo-inverse. The Gram matrix
    is a symmetric rank-k update, exact in float32 for +-1 patterns (``memory_fast_paths.gram_lower``)."""
    x = np.asarray(pre, dtype=np.float64)
    y = np.asarray(post, dtype=np.float64)
    tall = x.shape[0] <= x.shape[1]
    lower = gram_cholesky(gram_lower(x, rows=tall))
    if lower is None:
        return y.T @ np.linalg.pinv(x).T
    # tall: W = Y^T G^-1 X with G = X X^T; wide: W^T = G^-1 X^T Y with G = X^T X
    rhs = y if tall else x.T @ y
    solved = scipy.linalg.solve_triangular(lower.T, scipy.linalg.solve_triangular(lower, rhs, lower=True,
                                           check_finite=False), lower=False, check_finite=False)
    return solved.T @ x if tall else solved.T


@register_fast_path("vector_hash.heteroassociation.pseudoinverse", "torch", **_PSEUDOINVERSE)
def _pseudoinverse_torch(pre, post, epochs: int):
    import torch

    return post.to(torch.float64).T @ torch.linalg.pinv(pre.to(torch.float64)).T


_OUTER_PRODUCT = dict(
    description="Hebbian heteroassociative weights W = epochs Y^T X (sum of outer products), one matrix product",
    twin="the engine's online storage with the library rule 'hebbian' (equal to rounding)",
    replaces=HEBBIAN,
)


@register_fast_path("vector_hash.heteroassociation.outer_product", ("numba", "numpy"), **_OUTER_PRODUCT)
def _outer_product_numpy(pre: np.ndarray, post: np.ndarray, epochs: int) -> np.ndarray:
    return epochs * (np.asarray(post, dtype=np.float64).T @ np.asarray(pre, dtype=np.float64))


@register_fast_path("vector_hash.heteroassociation.outer_product", "torch", **_OUTER_PRODUCT)
def _outer_product_torch(pre, post, epochs: int):
    return epochs * (post.T @ pre)


# ----------------------------------------------------------------------------- the model


def mutual_information_per_bit(overlap: Any) -> np.ndarray:
    """Mutual information per bit, 1 - H2((1 + m) / 2), between +-1 patterns and their recall with
    overlap m (a binary symmetric channel flipping a fraction (1 - m) / 2 of the bits), as the
    authors compute it for Fig. 3 from the mean overlap; 1 at m = +-1, 0 at m = 0, NaN where m is NaN
    (a point not yet computed)."""
    m = np.clip(np.abs(np.asarray(overlap, dtype=np.float64)), 0.0, 1.0)
    a, b = (1.0 + m) / 2.0, (1.0 - m) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(a > 0, a * np.log2(a), 0.0) - np.where(b > 0, b * np.log2(b), 0.0)
    return np.where(np.isnan(m), np.nan, 1.0 - entropy)


@dataclass
class Recall:
    """What a recall returns, one row per cue: the sensory output ``sensory`` (+-1, 0 where the field
    is exactly 0), the place state after the loop ``place``, the grid ``state`` (index of the scaffold
    state the modules' winners form, -1 when a module has no single winner) and the place state the
    cue evoked, ``cued_place``."""

    sensory: np.ndarray
    place: np.ndarray
    state: np.ndarray
    cued_place: np.ndarray


class VectorHaSH:
    """A Vector-HaSH memory: the scaffold of grid modules with periods ``lambdas`` and ``n_place``
    place cells, and a sensory layer of ``n_sensory`` units whose patterns :meth:`store` associates
    with scaffold states by the storage rule ``storage`` (``"pseudoinverse"``, the paper's,
    ``"hebbian"``, or any rule: a library name, a table of equations or a Rule).

    ``seed`` (an integer, SeedSequence or Generator) draws the grid to place weights.
    ``scaffold_rule`` learns the place to grid weights over every scaffold state (``"hebbian"``:
    W_gp = G^T P, the authors' up to a factor that leaves the winners unchanged; it keeps all or all
    but one of the 3600 states stable with 400 place cells, about 65 % with 100; ``"pseudoinverse"``
    keeps all of them with 150 place cells and more). Attributes: ``grid`` (S, Ng) scaffold
    states, ``place_codebook`` (S, Np) their place states, ``w_pg``, ``w_gp``, and after
    :meth:`store`, ``w_ps``, ``w_sp``, ``patterns`` and ``states`` (the scaffold state of each
    stored pattern).

    Example::

        memory = VectorHaSH(n_sensory=900, n_place=100, scaffold_rule="pseudoinverse", seed=1)
        patterns = np.sign(np.random.default_rng(2).standard_normal((60, 900)))
        memory.store(patterns)
        (memory.recall(patterns).sensory == patterns).all()  # True: 60 <= n_place
    """

    def __init__(
        self,
        n_sensory: int,
        *,
        lambdas: Sequence[int] = LAMBDAS,
        n_place: int = 400,
        threshold: float = 0.5,
        connectivity: float = 0.6,
        storage: Any = "pseudoinverse",
        scaffold_rule: Any = "hebbian",
        seed: int | np.random.SeedSequence = 0,
        backend: str = "numba",
        dtype: str = "float32",
        device: str | None = None,
    ):
        self.lambdas = check_lambdas(lambdas)
        self.n_sensory = check("n_sensory", n_sensory, Int(1, 1_000_000))
        self.n_place = check("n_place", n_place, Int(1, 100_000))
        self.threshold = check("threshold", threshold, Real(-100, 100))
        self.connectivity = check("connectivity", connectivity, Real(0, 1, low_open=True))
        self.runtime = resolve(backend, device, dtype)
        self.storage = check_storage(storage, self.runtime)
        self.scaffold_rule = check_storage(scaffold_rule, self.runtime, "scaffold_rule")
        rng = np.random.default_rng(seed)
        self.grid = scaffold_states(self.lambdas)
        self.w_pg = place_weights(rng, self.n_place, self.grid.shape[1], self.connectivity)
        self.place_codebook = np.maximum(self.grid.astype(np.float64) @ self.w_pg.T - self.threshold, 0.0)
        self.w_gp = heteroassociate("place", self.place_codebook, "grid", self.grid.astype(np.float64),
                                    self.scaffold_rule, self.runtime)
        self._scaffold = scaffold_network(self.lambdas, self.w_pg, self.w_gp, self.threshold)
        sizes = _module_sizes(self.lambdas)
        self._radix = np.cumprod([1, *sizes[:-1]])
        self._state_of_code = np.full(math.prod(sizes), -1, dtype=np.int64)
        self._state_of_code[self._codes(self.grid)] = np.arange(self.grid.shape[0])
        self.w_ps = self.w_sp = self.patterns = self.states = None
        self._simulations: dict[tuple[str, int], Simulation] = {}

    @property
    def n_states(self) -> int:
        """Number of scaffold states, (prod lambda)^2."""
        return self.grid.shape[0]

    @property
    def n_synapses(self) -> int:
        """Synapses of the memory: sensory to place and back, grid to place and back."""
        return 2 * self.n_sensory * self.n_place + 2 * self.n_place * self.grid.shape[1]

    def _codes(self, grid: np.ndarray) -> np.ndarray:
        """Mixed-radix code of each grid state's module winners, -1 where a module has no single winner."""
        codes = np.zeros(grid.shape[0], dtype=np.int64)
        valid = np.ones(grid.shape[0], dtype=bool)
        offset = 0
        for size, radix in zip(_module_sizes(self.lambdas), self._radix):
            module = grid[:, offset:offset + size]
            valid &= (module != 0).sum(1) == 1
            codes += radix * module.argmax(1)
            offset += size
        return np.where(valid, codes, -1)

    def state_of(self, grid: np.ndarray) -> np.ndarray:
        """The scaffold state index of each grid state (row), -1 when a module has no single winner."""
        codes = self._codes(np.asarray(grid))
        return np.where(codes >= 0, self._state_of_code[np.maximum(codes, 0)], -1)

    def _check_sensory(self, values: Any, name: str) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.n_sensory:
            raise ConfigError(f"{name} must be (count, n_sensory = {self.n_sensory}) sensory patterns; got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ConfigError(f"{name} must be finite numbers")
        return array

    def store(self, patterns: Any, states: Any = None, *, epochs: int = 1) -> "VectorHaSH":
        """Associate each sensory pattern (row of ``patterns``) with a scaffold state: ``states``
        (indices), by default the first P states (positions (0, 0), (0, 1), ...), each used once;
        the storage rule sees the pairs ``epochs`` times. Replaces what was stored before."""
        x = self._check_sensory(patterns, "patterns")
        epochs = check("epochs", epochs, Int(1, 10_000))
        if states is None:
            if x.shape[0] > self.n_states:
                raise ConfigError(
                    f"patterns: {x.shape[0]} patterns but the scaffold has {self.n_states} states "
                    f"((prod lambdas)^2 for lambdas {self.lambdas}), one per pattern; store at most {self.n_states}"
                )
            states = np.arange(x.shape[0])
        states = np.asarray(states)
        if states.shape != (x.shape[0],) or not np.issubdtype(states.dtype, np.integer):
            raise ConfigError(f"states must be {x.shape[0]} integer scaffold state indices, one per pattern; got {states!r}")
        if states.size and (states.min() < 0 or states.max() >= self.n_states):
            raise ConfigError(f"states must be scaffold state indices in [0, {self.n_states - 1}]")
        place = self.place_codebook[states]
        self.w_ps = heteroassociate("sensory", x, "place", place, self.storage, self.runtime, epochs)
        self.w_sp = heteroassociate("place", place, "sensory", x, self.storage, self.runtime, epochs)
        self.patterns, self.states = x, states
        self._simulations.clear()  # the encoder and decoder hold the old weights
        return self

    def _simulation(self, network: Network | str, trials: int) -> Simulation:
        """A simulation of ``network`` for ``trials`` cues; ``"encoder"``, ``"scaffold"`` and ``"decoder"``
        are built once per batch size and kept until the next :meth:`store` (every run overwrites the
        state it reads, so a kept simulation gives what a new one would)."""
        runtime = self.runtime
        if not isinstance(network, str):
            return Simulation(network, trials=trials, backend=runtime.backend, dtype=runtime.dtype, device=runtime.device)
        key = (network, trials)
        if key not in self._simulations:
            built = {"encoder": lambda: encoder_network(self.w_ps), "scaffold": lambda: self._scaffold,
                     "decoder": lambda: decoder_network(self.w_sp)}[network]()
            self._simulations[key] = self._simulation(built, trials)
        return self._simulations[key]

    def scaffold_recall(self, place: Any, iterations: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Run the grid-place loop ``iterations`` times from place states (rows): each time the grid
        modules take the winners of W_gp p and the place cells relu(W_pg g - threshold). Returns the
        final place states and the scaffold state index of the last grid state (-1: no single winner)."""
        iterations = check("iterations", iterations, Int(1, 1000))
        p = np.asarray(place, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.n_place:
            raise ConfigError(f"place states must be (count, n_place = {self.n_place}); got shape {p.shape}")
        places, states = np.empty_like(p), np.empty(p.shape[0], dtype=np.int64)
        modules = [f"grid{k}" for k in range(len(self.lambdas))]
        for start, stop in _batches(p.shape[0], self.n_place + self.grid.shape[1]):
            simulation = self._simulation("scaffold", stop - start)
            simulation.set("place.x", p[start:stop])
            for _ in range(iterations):
                simulation.advance(1, plastic=False)  # the grid takes the winners of the place state
                grid = np.concatenate([simulation.get(f"{m}.g") for m in modules], axis=1)
                simulation.advance(1, plastic=False)  # the place cells take the grid state
            places[start:stop] = simulation.get("place.x")
            states[start:stop] = self.state_of(grid)
        return places, states

    def recall(self, cues: Any, iterations: int = 1) -> Recall:
        """Recall from sensory cues (rows): place, grid clean-up ``iterations`` times, place, sensory."""
        if self.w_ps is None:
            raise ConfigError("nothing is stored yet: call store(patterns) before recall")
        s = self._check_sensory(cues, "cues")
        iterations = check("iterations", iterations, Int(1, 1000))
        out = Recall(np.empty_like(s), np.empty((s.shape[0], self.n_place)), np.empty(s.shape[0], dtype=np.int64),
                     np.empty((s.shape[0], self.n_place)))
        for start, stop in _batches(s.shape[0], self.n_sensory):
            trials = stop - start
            encoder = self._simulation("encoder", trials)
            encoder.set("sensory.x", s[start:stop])
            encoder.advance(1, plastic=False)
            cued = encoder.get("place.y")
            place, state = self.scaffold_recall(cued, iterations)
            decoder = self._simulation("decoder", trials)
            decoder.set("place.x", place)
            decoder.advance(1, plastic=False)
            out.sensory[start:stop] = decoder.get("sensory.y")
            out.place[start:stop], out.state[start:stop], out.cued_place[start:stop] = place, state, cued
        return out


    # ------------------------------------------------------------------------- sequences

    def path_states(self, length: int, start: Sequence[int] = (0, 0), velocity: Sequence[int] = (0, 1)) -> np.ndarray:
        """Scaffold state indices of the path (x0 + t vx, y0 + t vy) mod L, t = 0 .. length - 1
        (L = prod lambda); an error when the path comes back to a state it visited."""
        length = check("length", length, Int(1, self.n_states))
        side = math.prod(self.lambdas)
        (x0, y0), (vx, vy) = _pair("start", start), _pair("velocity", velocity)
        steps = np.arange(length)
        states = ((x0 + steps * vx) % side) * side + (y0 + steps * vy) % side
        if np.unique(states).size != length:
            period = int(np.flatnonzero(states == states[0])[1])
            raise ConfigError(f"length: the path with velocity ({vx}, {vy}) returns to its first state after {period} "
                              f"steps, so it holds at most {period} patterns; got length {length}")
        return states

    def store_sequence(self, patterns: Any, start: Sequence[int] = (0, 0), velocity: Sequence[int] = (0, 1), *,
                       epochs: int = 1) -> "VectorHaSH":
        """Store a sequence (rows of ``patterns``, in order) along a path of scaffold states: element t at
        position start + t velocity (Chandra et al. 2025, Fig. 5: sequences as paths on the scaffold)."""
        x = self._check_sensory(patterns, "patterns")
        return self.store(x, self.path_states(x.shape[0], start, velocity), epochs=epochs)

    def recall_sequence(self, cues: Any, length: int, velocity: Sequence[int] = (0, 1), iterations: int = 1
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Replay a stored sequence from a cue of its first element (rows of ``cues``): the cue is recalled
        to a grid state, then the grid state is shifted by ``velocity`` each step (path integration: a
        fixed recurrent permutation of each module's cells) and read out through place to sensory.
        Returns the sensory sequence (cues, length, n_sensory) and its scaffold states (cues, length)."""
        length = check("length", length, Int(1, self.n_states))
        first = self.recall(cues, iterations)
        count = first.state.shape[0]
        if (first.state < 0).any():
            raise ConfigError("cues: a cue reached no scaffold state (a grid module without a single winner)")
        simulation = self._simulation(replay_network(self.lambdas, self.w_pg, self.threshold, _pair("velocity", velocity)),
                                      count)
        grid, offset = self.grid[first.state], 0
        for k, size in enumerate(_module_sizes(self.lambdas)):
            simulation.set(f"grid{k}.g", grid[:, offset:offset + size])
            offset += size
        places = np.empty((length, count, self.n_place))
        states = np.empty((count, length), dtype=np.int64)
        for t in range(length):
            states[:, t] = self.state_of(np.concatenate(
                [simulation.get(f"grid{k}.g") for k in range(len(self.lambdas))], axis=1))
            simulation.advance(1, plastic=False)  # place cells read the grid state; the grid moves on
            places[t] = simulation.get("place.x")
        sensory = np.empty((length * count, self.n_sensory))
        flat = places.reshape(length * count, self.n_place)
        for start, stop in _batches(flat.shape[0], self.n_sensory):
            decoder = self._simulation("decoder", stop - start)
            decoder.set("place.x", flat[start:stop])
            decoder.advance(1, plastic=False)
            sensory[start:stop] = decoder.get("sensory.y")
        return sensory.reshape(length, count, self.n_sensory).transpose(1, 0, 2), states


def _pair(name: str, value: Any) -> tuple[int, int]:
    pair = check(name, value, Sizes(-1_000_000, 1_000_000, 2, 2))
    return int(pair[0]), int(pair[1])


def shift_weights(period: int, velocity: tuple[int, int]) -> np.ndarray:
    """The permutation (period^2, period^2) that moves a module's bump by ``velocity`` on its torus:
    cell (a, b) to ((a + vx) mod period, (b + vy) mod period), the authors' path-integration W_gg."""
    a, b = np.divmod(np.arange(period * period), period)
    moved = ((a + velocity[0]) % period) * period + (b + velocity[1]) % period
    weights = np.zeros((period * period, period * period))
    weights[moved, np.arange(period * period)] = 1.0
    return weights


def replay_network(lambdas: Sequence[int], w_pg: np.ndarray, threshold: float, velocity: tuple[int, int]) -> Network:
    """Path integration and read-out: one population per grid module (``g``, the winner of its input)
    with a fixed recurrent projection ``shift{k}`` that moves its bump by ``velocity`` each step, and
    the place cells (``x = relu(I - threshold)``) driven by the grid through W_pg."""
    place = Population(w_pg.shape[0], ["x = relu(I - threshold)"], init={"x": 0.0}, params={"threshold": threshold},
                       name="place")
    modules, projections, offset = [], [], 0
    for k, period in enumerate(lambdas):
        size = period * period
        module = Population(size, [WINNER_TAKE_ALL], init={"g": 0.0}, name=f"grid{k}")
        modules.append(module)
        projections.append(Projection(module, module, None, source="g", init={"w": shift_weights(period, velocity)},
                                      shared=True, name=f"shift{k}"))
        projections.append(Projection(module, place, None, source="g", init={"w": w_pg[:, offset:offset + size]},
                                      shared=True, name=f"grid{k}_to_place"))
        offset += size
    return Network([place, *modules], projections)

def _batches(count: int, width: int):
    """(start, stop) of consecutive batches of rows, each at most :data:`_BATCH_VALUES` values wide and
    of as nearly equal sizes as can be (a simulation is built per batch size)."""
    most = max(1, _BATCH_VALUES // max(1, width))
    step = -(-count // -(-count // most)) if count else 1
    return [(start, min(count, start + step)) for start in range(0, count, step)]


# ----------------------------------------------------------------------------- protocol


def corrupt(pattern: np.ndarray, cue: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """A cue from a +-1 ``pattern``: ``"noise"`` flips round(level N) random bits, ``"partial"`` sets
    round(level N) random units to 0 (unknown)."""
    if cue == "noise":
        return flip_bits(pattern, level, rng)
    out = np.array(pattern, dtype=np.float64, copy=True)
    count = int(round(level * out.shape[-1]))
    if count:
        out[rng.choice(out.shape[-1], size=count, replace=False)] = 0.0
    return out


@protocol("vector_hash.continuum")
def continuum(
    *,
    lambdas: Annotated[list, Sizes(2, 64, 1, 6)] = list(LAMBDAS),
    n_place: Annotated[int, Int(1, 100_000)] = 400,
    n_sensory: Annotated[int, Int(1, 100_000)] = 3600,
    patterns: Annotated[int, Int(1, 1_000_000)] = 400,
    cue: Annotated[str, Choice(*CUES)] = "noise",
    level: Annotated[float, Real(0, 1)] = 0.0,
    storage: Annotated[Any, RuleSpec()] = "pseudoinverse",
    scaffold_rule: Annotated[Any, RuleSpec()] = "hebbian",
    iterations: Annotated[int, Int(1, 1000)] = 1,
    threshold: Annotated[float, Real(-100, 100)] = 0.5,
    connectivity: Annotated[float, Real(0, 1, low_open=True)] = 0.6,
    trials: Annotated[int, Int(1, 100_000)] = 5,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Recall in Vector-HaSH against the number of stored patterns (Chandra et al. 2025, Fig. 3).

    Each trial draws its own grid to place weights and stores its ``patterns`` random +-1 sensory
    patterns of ``n_sensory`` units, the trial's common patterns (``networks._assoc.common_patterns``:
    the first ``patterns`` of one pattern book per trial, as the authors' continuum, and the first
    n units of them in ``hopfield.capacity`` and ``modern.retrieval`` with ``common_patterns = true``
    and the same seed), stores them at the first scaffold states with the ``storage`` rule, cues
    the memory (place to grid weights learned over every scaffold state by ``scaffold_rule``) with every
    stored pattern corrupted by ``cue`` (``"noise"``: a fraction ``level`` of
    the bits flipped; ``"partial"``: a fraction ``level`` of the units set to 0), runs the grid-place
    loop ``iterations`` times and records the mean ``overlap`` s . s_out / N between stored and
    recalled patterns, the ``mutual_information`` per input bit computed from it (as the authors
    do), the fraction of patterns recalled ``exact``ly and the fraction whose grid state is the one
    they were stored at (``scaffold_correct``).
    """
    periods = check_lambdas(lambdas)
    states = math.prod(periods) ** 2
    if patterns > states:
        raise ConfigError(
            f"patterns must be at most the {states} scaffold states of lambdas {periods} (one state per pattern); "
            f"got {patterns}"
        )
    runtime = resolve(backend, device, dtype)
    storage = check_storage(storage, runtime)  # a rule the layers cannot run fails before any work
    scaffold_rule = check_storage(scaffold_rule, runtime, "scaffold_rule")
    overlap, exact, scaffold_correct = np.empty(trials), np.empty(trials), np.empty(trials)
    n_synapses = 0
    for t, rng in enumerate(trial_generators(seed, trials)):
        memory = VectorHaSH(n_sensory, lambdas=periods, n_place=n_place, threshold=threshold, connectivity=connectivity,
                            storage=storage, scaffold_rule=scaffold_rule, seed=rng, backend=backend, dtype=dtype, device=device)
        stored = common_patterns(rng, patterns, n_sensory).astype(np.float64)
        memory.store(stored)
        cues = np.stack([corrupt(row, cue, level, rng) for row in stored]) if level > 0 else stored
        result = memory.recall(cues, iterations)
        per_pattern = np.einsum("pi,pi->p", result.sensory, stored) / n_sensory
        overlap[t] = per_pattern.mean()
        exact[t] = (result.sensory == stored).all(1).mean()
        scaffold_correct[t] = (result.state == memory.states).mean()
        n_synapses = memory.n_synapses
    dims = ("trial",)
    return xr.Dataset(
        {
            "overlap": (dims, overlap, {"long_name": "mean overlap between stored and recalled patterns", "units": "1"}),
            "mutual_information": (dims, mutual_information_per_bit(overlap),
                                   {"long_name": "mutual information per input bit, 1 - H2((1 + m) / 2)", "units": "bit"}),
            "exact": (dims, exact, {"long_name": "fraction of patterns recalled with every bit right", "units": "1"}),
            "scaffold_correct": (dims, scaffold_correct,
                                 {"long_name": "fraction of cues whose grid state is the one stored", "units": "1"}),
            "num_patterns": ((), patterns, {"long_name": "stored patterns"}),
            "n_synapses": ((), n_synapses, {"long_name": "synapses (2 Ns Np + 2 Np Ng)"}),
        },
        coords={"trial": np.arange(trials)},
        attrs={"model": "Vector-HaSH (Chandra et al. 2025)", "storage": storage.name or "(unnamed)", "cue": cue},
    )


@protocol("vector_hash.sequence")
def sequence(
    *,
    lambdas: Annotated[list, Sizes(2, 64, 1, 6)] = list(LAMBDAS),
    n_place: Annotated[int, Int(1, 100_000)] = 400,
    n_sensory: Annotated[int, Int(1, 100_000)] = 3600,
    length: Annotated[int, Int(1, 1_000_000)] = 60,
    velocity: Annotated[list, Sizes(0, 1_000_000, 2, 2)] = [0, 1],
    level: Annotated[float, Real(0, 1)] = 0.1,
    storage: Annotated[Any, RuleSpec()] = "pseudoinverse",
    scaffold_rule: Annotated[Any, RuleSpec()] = "hebbian",
    threshold: Annotated[float, Real(-100, 100)] = 0.5,
    connectivity: Annotated[float, Real(0, 1, low_open=True)] = 0.6,
    trials: Annotated[int, Int(1, 100_000)] = 5,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Sequence replay in Vector-HaSH (Chandra et al. 2025, Fig. 5): each trial stores ``length`` random
    +-1 patterns along the path of scaffold states from position (0, 0) with ``velocity`` (the path must
    not come back to a state it visited), cues with the first with a fraction ``level`` of its bits
    flipped, replays ``length`` elements by shifting the grid state and records per element the
    ``overlap`` with the stored one and whether its grid state is the stored one (``on_path``).
    """
    periods = check_lambdas(lambdas)
    side = math.prod(periods)
    steps = np.arange(length)
    path = ((steps * velocity[0]) % side) * side + (steps * velocity[1]) % side
    if np.unique(path).size != length:
        raise ConfigError(f"length must be at most the number of distinct states on the path of velocity {velocity} "
                          f"({np.unique(path).size} on the {side} x {side} scaffold); got {length}")
    runtime = resolve(backend, device, dtype)
    storage = check_storage(storage, runtime)
    scaffold_rule = check_storage(scaffold_rule, runtime, "scaffold_rule")
    overlap = np.empty((trials, length))
    on_path = np.empty((trials, length), dtype=bool)
    for t, rng in enumerate(trial_generators(seed, trials)):
        memory = VectorHaSH(n_sensory, lambdas=periods, n_place=n_place, threshold=threshold, connectivity=connectivity,
                            storage=storage, scaffold_rule=scaffold_rule, seed=rng, backend=backend, dtype=dtype,
                            device=device)
        stored = rng.integers(0, 2, size=(length, n_sensory)) * 2.0 - 1.0
        memory.store_sequence(stored, (0, 0), velocity)
        replayed, states = memory.recall_sequence(corrupt(stored[0], "noise", level, rng), length, velocity)
        overlap[t] = np.einsum("li,li->l", replayed[0], stored) / n_sensory
        on_path[t] = states[0] == memory.states
    dims = ("trial", "element")
    return xr.Dataset(
        {
            "overlap": (dims, overlap, {"long_name": "overlap of the replayed element with the stored one", "units": "1"}),
            "on_path": (dims, on_path, {"long_name": "the replayed grid state is the element's stored state"}),
            "exact": (("trial",), (overlap == 1.0).mean(1), {"long_name": "fraction of elements replayed exactly"}),
        },
        coords={"trial": np.arange(trials), "element": np.arange(length)},
        attrs={"model": "Vector-HaSH (Chandra et al. 2025)", "storage": storage.name or "(unnamed)"},
    )
