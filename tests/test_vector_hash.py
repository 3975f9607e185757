"""Vector-HaSH (Chandra, Sharma, Chaudhuri & Fiete 2025, Nature 638:739): the scaffold, recall, the
memory continuum, swappable storage rules, the pseudo-inverse fast path and its twin, bad input."""

import math

import numpy as np
import pytest

import reference
from plasticity.backends.runtime import fast_path, resolve
from plasticity.errors import ConfigError, EquationError
from plasticity.networks._assoc import common_patterns, trial_generators
from plasticity.networks.hopfield import capacity as hopfield_capacity
from plasticity.networks.modern import retrieval as modern_retrieval
from plasticity.networks.vector_hash import (
    VectorHaSH,
    check_lambdas,
    continuum,
    sequence,
    heteroassociate,
    mutual_information_per_bit,
    place_weights,
    scaffold_states,
    shift_weights,
)
from plasticity.rules import resolve_rule


def random_patterns(count, n, seed=0):
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(count, n))


@pytest.fixture(scope="module")
def scaffold400():
    """The paper's scaffold (lambdas 3, 4, 5; 400 place cells), place to grid weights by pseudo-inverse."""
    return VectorHaSH(8, n_place=400, seed=0, scaffold_rule="pseudoinverse")


# ----------------------------------------------------------------------------- the scaffold


def test_scaffold_states_are_one_hot_per_module_and_distinct():
    grid = scaffold_states([3, 4, 5])
    assert grid.shape == (3600, 50)
    assert (grid[:, :9].sum(1) == 1).all() and (grid[:, 9:25].sum(1) == 1).all() and (grid[:, 25:].sum(1) == 1).all()
    assert len({row.tobytes() for row in grid}) == 3600
    x, y = 7, 11  # position (7, 11) is row 7 * 60 + 11: cells (1, 2) of module 3, (3, 3) of 4, (2, 1) of 5
    assert np.flatnonzero(grid[7 * 60 + 11]).tolist() == [1 * 3 + 2, 9 + 3 * 4 + 3, 25 + 2 * 5 + 1]
    assert x % 3 == 1 and y % 5 == 1


def test_periods_that_share_a_factor_are_refused_with_the_number_of_states():
    with pytest.raises(ConfigError, match=r"gcd\(4, 6\) = 2.*144 distinct grid states, not .* 576"):
        check_lambdas([4, 6])
    with pytest.raises(ConfigError, match="lambdas"):
        VectorHaSH(10, lambdas=[3, 6])


def test_place_weights_are_pruned_as_the_authors_prune_them():
    weights = place_weights(np.random.default_rng(0), 400, 50, 0.6)
    # round(0.4 * 20000) synapses drawn with replacement: a fraction exp(-0.4) survives
    assert abs((weights != 0).mean() - math.exp(-0.4)) < 0.01


def test_place_activity_matches_the_authors_notebook():
    """The authors' Full_model_testing_Fig_3 notebook (novelty detection cell) records the mean place
    activity relu(W_pg g - 0.5) per state as about 0.341, its spread over states about 0.035, for
    400 place cells; here 0.335, 0.331, 0.352 and 0.028, 0.034, 0.034 for seeds 0, 1, 2."""
    for seed in range(3):
        per_state = VectorHaSH(4, n_place=400, seed=seed).place_codebook.mean(1)
        assert abs(per_state.mean() - 0.341) < 0.02 and abs(per_state.std() - 0.035) < 0.01


def test_the_grid_place_loop_returns_every_scaffold_state_from_perturbed_place_states(scaffold400):
    """Chandra et al. (2025) Fig. 2: with 400 place cells every one of the 3600 scaffold states is a
    fixed point of the grid-place loop, with a basin: here place states perturbed by Gaussian noise of
    norm half the mean place-state norm (the authors' basin test, |noise| / |p| = 0.5)."""
    codebook = scaffold400.place_codebook
    norm = np.linalg.norm(codebook, axis=1).mean()
    noise = np.random.default_rng(1).standard_normal(codebook.shape) / math.sqrt(400)
    place, state = scaffold400.scaffold_recall(codebook + 0.5 * norm * noise)
    assert (state == np.arange(3600)).all()
    np.testing.assert_allclose(place, codebook, atol=1e-4)


def test_hebbian_scaffold_keeps_all_but_a_few_states_at_400_place_cells():
    """The authors' Hebbian place to grid weights (W_gp = G^T P): at 400 place cells all 3600 states or
    all but one are fixed points (seeds 0 and 2: 3599 and 3600 here), far fewer at 100 place cells."""
    for seed, expected in ((0, 3599), (2, 3600)):
        memory = VectorHaSH(8, n_place=400, seed=seed)
        assert (memory.scaffold_recall(memory.place_codebook)[1] == np.arange(3600)).sum() == expected
    small = VectorHaSH(8, n_place=100, seed=0)
    assert (small.scaffold_recall(small.place_codebook)[1] == np.arange(3600)).mean() < 0.8


# ----------------------------------------------------------------------------- recall and the continuum


@pytest.fixture(scope="module")
def memory():
    return VectorHaSH(300, n_place=150, seed=3, scaffold_rule="pseudoinverse")


def test_every_pattern_is_recalled_exactly_up_to_the_number_of_place_cells(memory):
    """While P <= Np the stored place states are independent and recall from clean cues is perfect."""
    for count in (1, 75, 150):
        patterns = random_patterns(count, 300, seed=count)
        result = memory.store(patterns).recall(patterns)
        assert (result.sensory == patterns).all(), count
        assert (result.state == np.arange(count)).all()


def test_recall_degrades_gracefully_past_the_number_of_place_cells(memory):
    """Past Np the place to sensory map is a least-squares projection: the overlap follows
    erf(sqrt(Np / (2 (P - Np)))) (0.843 at P = 1.5 Np, 0.683 at P = 2 Np for Np = 150) with no cliff,
    while the scaffold still finds every stored state (P <= Ns, so the cue's place state is exact)."""
    for count, expected in ((225, 0.843), (300, 0.683)):
        patterns = random_patterns(count, 300, seed=count)
        result = memory.store(patterns).recall(patterns)
        overlap = np.einsum("pi,pi->p", result.sensory, patterns).mean() / 300
        assert abs(overlap - math.erf(math.sqrt(150 / (2 * (count - 150))))) < 0.03, (count, overlap)
        assert abs(overlap - expected) < 0.03
        assert (result.state == np.arange(count)).all()


def test_noisy_cues_are_cleaned_up_by_the_scaffold(memory):
    patterns = random_patterns(100, 300, seed=7)
    memory.store(patterns)
    rng = np.random.default_rng(8)
    cues = patterns * np.where(rng.random(patterns.shape) < 0.1, -1.0, 1.0)
    result = memory.recall(cues)
    assert (result.sensory == patterns).all(1).mean() >= 0.95


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_engine_recall_equals_the_per_cue_reference(memory, backend):
    """The engine's three networks give the authors' per-cue loop exactly (float64), past Np too."""
    patterns = random_patterns(200, 300, seed=11)
    model = VectorHaSH(300, n_place=150, seed=3, scaffold_rule="pseudoinverse", backend=backend, dtype="float64")
    model.store(patterns)
    cues = patterns * np.where(np.random.default_rng(12).random(patterns.shape) < 0.2, -1.0, 1.0)
    result = model.recall(cues[:40], iterations=2)
    for k, cue in enumerate(cues[:40]):
        sensory, place, grid = reference.vector_hash_recall(model.w_ps, model.w_gp, model.w_pg, model.w_sp,
                                                            model.lambdas, model.threshold, cue, iterations=2)
        np.testing.assert_array_equal(result.sensory[k], sensory)
        np.testing.assert_allclose(result.place[k], place, atol=1e-9)
        assert result.state[k] == model.state_of(grid[None])[0]


# ----------------------------------------------------------------------------- storage rules and fast paths


@pytest.mark.parametrize("shape", [(30, 80), (80, 30)], ids=["fewer patterns than units", "more patterns"])
def test_pseudoinverse_fast_path_equals_numpy_pinv(shape):
    rng = np.random.default_rng(0)
    pre, post = rng.standard_normal(shape), rng.standard_normal((shape[0], 17))
    np.testing.assert_allclose(fast_path("vector_hash.heteroassociation.pseudoinverse", "numba")(pre, post, 1),
                               reference.vector_hash_pseudoinverse(pre, post), atol=1e-8)


def test_pseudoinverse_fast_path_of_repeated_patterns_equals_numpy_pinv():
    pre = random_patterns(10, 40)
    pre = np.concatenate([pre, pre[:3]])  # rank 10 of 13 patterns: no Cholesky factor, numpy's SVD
    post = np.random.default_rng(1).standard_normal((13, 5))
    np.testing.assert_allclose(fast_path("vector_hash.heteroassociation.pseudoinverse", "numpy")(pre, post, 1),
                               reference.vector_hash_pseudoinverse(pre, post), atol=1e-8)


def test_gram_cholesky_calls_a_gram_matrix_singular_by_its_smallest_pivot():
    """A pivot p of the Cholesky factor counts as zero when p^2 < 1e-10 times the largest diagonal
    entry (so the SVD takes over); a Gram matrix on either side of that line, and one that is not
    positive definite."""
    from plasticity.networks.memory_fast_paths import SINGULAR_PIVOT, gram_cholesky

    scale = 4.0
    kept = gram_cholesky(np.diag([scale, 10 * SINGULAR_PIVOT * scale]))
    np.testing.assert_allclose(kept, np.diag([2.0, math.sqrt(10 * SINGULAR_PIVOT * scale)]))
    assert gram_cholesky(np.diag([scale, 0.1 * SINGULAR_PIVOT * scale])) is None
    assert gram_cholesky(np.array([[1.0, 2.0], [2.0, 1.0]])) is None


def test_pseudoinverse_torch_fast_path_equals_numpy_pinv():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    pre, post = rng.standard_normal((20, 50)), rng.standard_normal((20, 7))
    out = fast_path("vector_hash.heteroassociation.pseudoinverse", "torch")(torch.tensor(pre), torch.tensor(post), 1)
    np.testing.assert_allclose(out.numpy(), reference.vector_hash_pseudoinverse(pre, post), atol=1e-8)


def test_hebbian_fast_path_equals_the_engines_online_storage():
    """The batch W = Y^T X equals presenting the pairs one per step to the library's hebb written
    out by hand (a user rule, which has no batch form): w += y_post * x_pre, pair by pair."""
    pre, post = random_patterns(25, 60, seed=1), np.random.default_rng(2).random((25, 40))
    runtime = resolve("numba", None, "float64")
    online = heteroassociate("sensory", pre, "place", post, resolve_rule({"equations": ["w += y_post * x_pre"]}), runtime)
    batch = heteroassociate("sensory", pre, "place", post, resolve_rule("hebbian"), runtime)
    np.testing.assert_allclose(online, post.T @ pre, atol=1e-9)
    np.testing.assert_allclose(batch, online, atol=1e-9)


def test_a_user_rule_stores_the_sensory_association():
    """A user's rule in the pseudo-inverse's place: normalised least mean squares (Kaczmarz's projection,
    w += (y_post - I_post) x_pre / |x|^2, whose passes converge to the pseudo-inverse) written as
    equations and run on the engine, 20 passes, recalls 8 stored patterns exactly; the library's
    Hebbian rule does not (the place states are non-negative and overlap, so the sum of outer products
    mixes the patterns: overlap about 0.76)."""
    patterns = random_patterns(8, 300, seed=4)
    kaczmarz = {"equations": ["q_post = sum_pre(x_pre * x_pre)", "w += (y_post - I_post) * x_pre / q_post"],
                "name": "kaczmarz"}
    model = VectorHaSH(300, n_place=150, seed=3, scaffold_rule="pseudoinverse", storage=kaczmarz)
    assert (model.store(patterns, epochs=20).recall(patterns).sensory == patterns).all()
    hebbian = VectorHaSH(300, n_place=150, seed=3, scaffold_rule="pseudoinverse", storage="hebbian")
    result = hebbian.store(patterns).recall(patterns)
    assert (result.state == np.arange(8)).all()  # the scaffold finds every state; the readout mixes them
    assert 0.6 < (result.sensory * patterns).mean() < 0.9


# ----------------------------------------------------------------------------- protocol and bad input


def test_hopfield_pseudoinverse_fast_path_by_cholesky_equals_numpy_pinv():
    """hopfield.storage.pseudoinverse by the Gram matrix's Cholesky factor: fewer patterns than units,
    more (the identity, diagonal removed), and a repeated pattern (a singular Gram matrix whose
    Cholesky factor LAPACK may return with a pivot of rounding size: numpy's SVD instead)."""
    x = np.stack([random_patterns(12, 30, seed=3), random_patterns(12, 30, seed=4)])
    repeated = x.copy()
    repeated[:, 7] = repeated[:, 3]
    for patterns in (x, random_patterns(40, 30, seed=5)[None], repeated):
        expected = np.linalg.pinv(patterns[0]) @ patterns[0]
        np.fill_diagonal(expected, 0.0)
        out = fast_path("hopfield.storage.pseudoinverse", "numba")(patterns, 1, "float64")
        np.testing.assert_allclose(out[0], expected, atol=1e-9)


# ----------------------------------------------------------------------------- common patterns


def test_common_patterns_are_the_same_whatever_the_count_and_the_width():
    first, second = trial_generators(11, 2)
    big = common_patterns(first, 50, 300)
    assert set(np.unique(big)) == {-1.0, 1.0} and abs(big.mean()) < 0.02
    np.testing.assert_array_equal(common_patterns(trial_generators(11, 2)[0], 20, 171), big[:20, :171])
    assert first.random() == np.random.default_rng(np.random.SeedSequence(11).spawn(2)[0]).random()  # not advanced
    assert np.abs(common_patterns(second, 50, 300) @ big.T / 300).max() < 0.35  # another trial: other patterns


def test_common_patterns_are_the_hashed_bits_the_docstring_gives():
    """The compiled hash against Python integers: unit i of pattern mu is the top bit of
    splitmix64(key + (mu 2^32 + i) golden) mod 2^64, key from the trial's SeedSequence."""
    rng = trial_generators(3, 1)[0]
    seq = rng.bit_generator.seed_seq
    key = int(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 0x7061747465726E73)).generate_state(1, np.uint64)[0])
    mask = (1 << 64) - 1

    def splitmix(x):
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    patterns = common_patterns(rng, 5, 70)
    expected = [[2.0 * (splitmix((key + ((mu << 32) | i) * 0x9E3779B97F4A7C15) & mask) >> 63) - 1.0 for i in range(70)]
                for mu in range(5)]
    np.testing.assert_array_equal(patterns, expected)


def test_comparison_protocols_store_the_common_patterns():
    """hopfield.capacity and modern.retrieval with common_patterns store the trial's common patterns:
    with two stored patterns, the Hebbian energy of the recalled first pattern, -(N^2 + c^2 - 2N) / 2,
    and the overlap of a modern network at beta -> 0 (the mean of both), (1 + c / N) / 2, give back
    their overlap c = x1 . x2 as common_patterns draws them."""
    n, seed = 40, 7
    c = np.array([float(x[0] @ x[1]) for x in (common_patterns(g, 2, n) for g in trial_generators(seed, 3))])
    hop = hopfield_capacity(n=n, patterns=2, flip=0.0, update="sync", trials=3, seed=seed, common_patterns=True)
    np.testing.assert_allclose(hop["energy"], -0.5 * (n * n + c ** 2 - 2 * n))
    modern = modern_retrieval(n=n, patterns=2, beta=1e-9, level=0.0, trials=3, seed=seed, common_patterns=True)
    np.testing.assert_allclose(modern["overlap"], (1 + c / n) / 2, atol=1e-6)


def test_mutual_information_per_bit():
    np.testing.assert_allclose(mutual_information_per_bit([1.0, -1.0, 0.0, np.nan]), [1.0, 1.0, 0.0, np.nan])
    # m = 0.5: a quarter of the bits wrong, 1 - H2(0.75)
    assert mutual_information_per_bit(0.5) == pytest.approx(1 + 0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))


def test_continuum_protocol_records_overlap_and_information():
    data = continuum(n_sensory=200, n_place=150, patterns=300, trials=2, seed=5, scaffold_rule="pseudoinverse")
    assert data["overlap"].dims == ("trial",)
    expected = math.erf(math.sqrt(150 / 300))  # P = 2 Np
    assert abs(float(data["overlap"].mean()) - expected) < 0.06
    np.testing.assert_allclose(data["mutual_information"], mutual_information_per_bit(data["overlap"]))
    assert int(data["n_synapses"]) == 2 * 200 * 150 + 2 * 150 * 50


def test_partial_and_noisy_cues_of_stored_patterns_are_completed():
    """Cues with 30 % of the units unknown (set to 0), or 10 % of the bits flipped, of 100 patterns
    (Np = 150): the scaffold completes them (the authors' Fig. 3 basins: near-perfect at 10 % flips)."""
    for cue, level in (("partial", 0.3), ("noise", 0.1)):
        data = continuum(n_sensory=300, n_place=150, patterns=100, cue=cue, level=level, trials=1, seed=13,
                         scaffold_rule="pseudoinverse")
        assert data["scaffold_correct"].item() >= 0.95 and data["overlap"].item() >= 0.95, cue


def test_vector_hash_degrades_gracefully_where_hebbian_hopfield_falls_off_a_cliff():
    """The memory continuum (Chandra et al. 2025, Fig. 3): at the same number of synapses, Vector-HaSH's
    information per bit stays 1 up to P = Np and then declines smoothly, as the least-squares read-out
    predicts (1 - H2((1 + m) / 2), m = erf(sqrt(Np / (2 (P - Np)))): 0.366 at P = 2 Np), while a
    Hebbian Hopfield network's falls from above 0.9 to below 0.2 between loads 0.12 and 0.23 (the cliff past
    0.14 N). Sizes: Ns = 300, Np = 150, Ng = 50 (105 000 synapses), Hopfield N = 324 (104 976).
    At the paper's sizes (Ns = 3600, Np = 400; figures/vector_hash_continuum) the same construction
    gives MI per bit about 1 up to P = 400, 0.60 at 600, 0.37 at 800, 0.056 at 3600, and the Hebbian
    Hopfield network of N = 1709 0.97 at P = 200, 0.08 at 300 (19 counts x 10 trials, the same
    patterns in both): the paper's shapes (a plateau and a
    smooth decline against a cliff). The values of the published panel could not be read here; these
    are checked against the least-squares theory instead."""
    counts = (40, 75, 150, 300)
    vh = [float(continuum(n_sensory=300, n_place=150, patterns=p, trials=1, seed=9,
                          scaffold_rule="pseudoinverse")["mutual_information"].mean()) for p in counts]
    hop = [float(mutual_information_per_bit(hopfield_capacity(n=324, patterns=p, trials=4, seed=9)["overlap"].mean()))
           for p in counts]
    assert vh[:3] == [1.0, 1.0, 1.0]
    theory = float(mutual_information_per_bit(math.erf(math.sqrt(150 / (2 * 150)))))
    assert abs(vh[3] - theory) < 0.05
    assert hop[0] > 0.9 and hop[1] < 0.2 and hop[2] < 0.2, hop  # loads 0.12, 0.23, 0.46: the cliff
    assert all(v > h for v, h in zip(vh[1:], hop[1:]))


def test_bad_input_is_refused_before_any_work(memory):
    with pytest.raises(ConfigError, match=r"patterns must be at most the 3600 scaffold states"):
        continuum(patterns=4000, n_sensory=10, n_place=10, trials=1)
    with pytest.raises(ConfigError, match=r"3601 patterns but the scaffold has 3600 states"):
        VectorHaSH(4, n_place=10).store(random_patterns(3601, 4))
    with pytest.raises(ConfigError, match=r"patterns must be \(count, n_sensory = 300\)"):
        memory.store(random_patterns(5, 299))
    memory.store(random_patterns(5, 300))
    with pytest.raises(ConfigError, match=r"cues must be \(count, n_sensory = 300\)"):
        memory.recall(random_patterns(2, 301))
    with pytest.raises(ConfigError, match="nothing is stored"):
        VectorHaSH(4, n_place=10).recall(random_patterns(1, 4))
    with pytest.raises(EquationError, match="cannot store"):
        VectorHaSH(4, n_place=10, storage={"equations": ["e = x_pre"]})
    with pytest.raises(EquationError, match="layers offer"):
        VectorHaSH(4, n_place=10, storage={"equations": ["w += r_post * x_pre"]})
    with pytest.raises(ConfigError, match="states must be"):
        memory.store(random_patterns(2, 300), states=[0, 3600])


# ----------------------------------------------------------------------------- sequences


def test_shift_weights_move_the_bump_on_the_torus():
    weights = shift_weights(4, (1, -1))
    bump = np.zeros(16)
    bump[3 * 4 + 0] = 1.0  # cell (3, 0) moves to (0, 3)
    assert np.flatnonzero(weights @ bump).tolist() == [0 * 4 + 3]
    assert (weights.sum(0) == 1).all() and (weights.sum(1) == 1).all()


def test_a_sequence_is_replayed_from_its_first_element_by_shifting_the_grid_state(memory):
    """Chandra et al. (2025) Fig. 5: a sequence stored along a path of scaffold states is replayed from
    a noisy cue of its first element by velocity shifts of the grid state alone."""
    sequence = random_patterns(60, 300, seed=21)
    memory.store_sequence(sequence, start=(5, 7), velocity=(1, 0))
    cue = sequence[0] * np.where(np.random.default_rng(22).random(300) < 0.1, -1.0, 1.0)
    replayed, states = memory.recall_sequence(cue, 60, velocity=(1, 0))
    assert (replayed[0] == sequence).all()
    assert states[0].tolist() == memory.path_states(60, (5, 7), (1, 0)).tolist()
    with pytest.raises(ConfigError, match="returns to its first state after 60 steps"):
        memory.path_states(61, (0, 0), (1, 0))


def test_sequence_protocol_replays_a_stored_path():
    """Protocol vector_hash.sequence: 60 elements (Np = 150) along the path of velocity (1, 1) are
    replayed exactly from a cue of the first with 10 % of bits flipped; a path longer than its
    period (60 states for velocity (1, 1) on the 60 x 60 scaffold) is refused before any work."""
    data = sequence(n_sensory=300, n_place=150, length=60, velocity=[1, 1], trials=1, seed=3,
                    scaffold_rule="pseudoinverse")
    assert data["overlap"].dims == ("trial", "element")
    assert data["on_path"].all() and data["exact"].item() == 1.0
    with pytest.raises(ConfigError, match="length must be at most the number of distinct states"):
        sequence(n_sensory=10, n_place=10, length=61, velocity=[1, 1])
