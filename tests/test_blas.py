"""The numba backend's matrix products (plasticity.backends.blas): every layout the engine hands
them against the triple loop of tests/reference.py, the choice of library, and its provenance."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import plasticity as pl
from plasticity.backends import blas

import reference


def _layouts(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """The same values in the layouts the engine's products see, and some they do not."""
    rows, columns = matrix.shape
    wide = np.zeros((rows, columns + 3), matrix.dtype)
    wide[:, 1:columns + 1] = matrix
    reversed_rows = np.ascontiguousarray(matrix[::-1])[::-1]
    every_other = np.zeros((rows, 2 * columns), matrix.dtype)
    every_other[:, ::2] = matrix
    return {
        "C": np.ascontiguousarray(matrix),
        "F": np.asfortranarray(matrix),
        "transposed": np.ascontiguousarray(matrix.T).T,
        "row block": wide[:, 1:columns + 1],
        "reversed rows": reversed_rows,  # a negative stride: not a BLAS layout, so np.dot
        "strided columns": every_other[:, ::2],
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 4, 6), (3, 1, 2), (4, 6, 1), (1, 1, 1), (16, 33, 9)])
def test_gemm_matches_the_triple_loop_in_every_layout(dtype, shape):
    m, k, n = shape
    rng = np.random.default_rng(sum(shape))
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    start = rng.standard_normal((m, n)).astype(dtype)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for (a_name, left), (b_name, right) in [(x, y) for x in _layouts(a).items() for y in _layouts(b).items()]:
        for alpha, beta in ((1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)):
            for out_name, out in _layouts(start).items():  # fresh copies; BLAS writes rows, others go through np.dot
                expected = reference.gemm(alpha, left, right, beta, out)
                blas.gemm(alpha, left, right, beta, out)
                assert out.dtype == dtype
                np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance,
                                           err_msg=f"a {a_name}, b {b_name}, out {out_name}, alpha {alpha}, beta {beta}")


def test_the_layouts_blas_reads_without_a_copy():
    """C, F, transposed and row-block operands go to BLAS (``N`` or ``T`` with their leading
    dimension); negative and non-unit strides in both dimensions do not (np.dot)."""
    layouts = _layouts(np.arange(12.0).reshape(3, 4))
    assert blas._fortran_view(layouts["C"]) == (ord("N"), 4)
    assert blas._fortran_view(layouts["F"]) == (ord("T"), 3)
    assert blas._fortran_view(layouts["transposed"]) == (ord("T"), 3)
    assert blas._fortran_view(layouts["row block"]) == (ord("N"), 7)
    assert blas._fortran_view(layouts["reversed rows"]) == (0, 0)
    assert blas._fortran_view(layouts["strided columns"]) == (0, 0)


def test_gemm_with_an_empty_inner_dimension_scales_out_and_ignores_nan_when_beta_is_zero():
    a, b = np.zeros((3, 0)), np.zeros((0, 2))
    out = np.full((3, 2), 2.0)
    blas.gemm(1.0, a, b, 0.5, out)
    np.testing.assert_array_equal(out, 1.0)
    out = np.full((3, 2), np.nan)
    blas.gemm(1.0, np.ones((3, 4)), np.ones((4, 2)), 0.0, out)  # beta = 0: out is only written
    np.testing.assert_array_equal(out, 4.0)


def test_gemm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes do not match"):
        blas.gemm(1.0, np.ones((3, 4)), np.ones((5, 2)), 0.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="shapes do not match"):
        blas.gemm(1.0, np.ones((3, 4)), np.ones((4, 2)), 0.0, np.zeros((2, 3)))


@numba.njit
def _thread_setting_after_a_product(a, b, out):
    blas.gemm(1.0, a, b, 0.0, out)
    return blas._set_threads(0)


def test_gemm_leaves_the_calling_threads_blas_setting_as_it_found_it():
    """MKL runs a product on numba's thread count, set for the calling thread only and restored
    after (0: the library's global setting, which torch's own products use)."""
    assert _thread_setting_after_a_product(np.ones((2, 3)), np.ones((3, 4)), np.zeros((2, 4))) == 0


def _run(code: str, **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


_TRAIN = """
import numpy as np, plasticity as pl
from plasticity.backends import blas
pre = pl.Population(40, init={"x": 0.0}, name="pre")
post = pl.Population(30, ["y = tanh(h)"], name="post")
net = pl.Network([pre, post], [pl.Projection(pre, post, "oja", source="x", target="h", shared=True, name="ff")])
sim = pl.Simulation(net, backend="numba", seed=3, trials=8)
sim.set("pre.x", np.random.default_rng(0).standard_normal((8, 40)))
sim.advance(20)
np.save("PATH", sim.get("ff.w"))
print(blas.BLAS)
"""


def test_scipy_blas_can_be_chosen_and_agrees_with_the_default(tmp_path):
    default = _run(_TRAIN.replace("PATH", str(tmp_path / "default.npy")))
    chosen = _run(_TRAIN.replace("PATH", str(tmp_path / "scipy.npy")), PLASTICITY_BLAS="scipy")
    assert default.returncode == 0, default.stderr
    assert chosen.returncode == 0, chosen.stderr
    assert not chosen.stdout.startswith("MKL") and "scipy" in chosen.stdout
    np.testing.assert_allclose(np.load(tmp_path / "scipy.npy"), np.load(tmp_path / "default.npy"), rtol=1e-5, atol=1e-6)


def test_an_unknown_blas_choice_is_a_clear_error():
    result = _run("import plasticity.backends.blas", PLASTICITY_BLAS="openblas")
    assert result.returncode != 0
    assert "PLASTICITY_BLAS='openblas' is not valid; valid values: auto, mkl, scipy" in result.stderr


def test_numba_runs_record_their_blas():
    population = pl.Population(3, ["y = 0.5 * y + 1"], init={"y": 0.0}, name="a")
    dataset = pl.Simulation(pl.Network([population]), backend="numba", seed=0).run(2, record={"a.y": 1})
    assert dataset.attrs["blas"] == blas.BLAS
    numpy_run = pl.Simulation(pl.Network([population]), backend="numpy", seed=0).run(2, record={"a.y": 1})
    assert "blas" not in numpy_run.attrs


def _product_in_child(queue):
    out = np.zeros((512, 512), np.float32)
    blas.gemm(1.0, np.ones((512, 300), np.float32), np.ones((300, 512), np.float32), 0.0, out)
    queue.put(float(out[0, 0]))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_a_forked_child_multiplies_after_its_parent_did_on_several_threads():
    """GNU OpenMP (MKL's threads) hangs when a forked child starts threads: products in a child run
    on one thread."""
    import multiprocessing

    previous = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        out = np.zeros((512, 512), np.float32)
        blas.gemm(1.0, np.ones((512, 300), np.float32), np.ones((300, 512), np.float32), 0.0, out)
    finally:
        numba.set_num_threads(previous)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_product_in_child, args=(queue,))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in its product")
    assert child.exitcode == 0 and queue.get(timeout=5) == 300.0
