"""The BLAS the numba backend multiplies matrices with: Intel MKL where torch carries it, else scipy's.

Every matrix product of the numba backend (drives and feedback of shared weights, the separable
updates of their plasticity, compiled step programs and steps taken one by one alike) is one
call of :func:`gemm`. Its machine code calls the Fortran ``?gemm`` symbols
``plasticity_blas_sgemm`` and ``plasticity_blas_dgemm``, bound when this module is imported to

- ``mkl``: Intel MKL's ``sgemm_``/``dgemm_``, exported by the ``libtorch_cpu`` library of the
  installed torch (a required dependency; x86-64 Linux wheels link MKL in), found without
  importing torch: the products of a predictive coding batch run faster on it than on scipy's
  OpenBLAS, side by side (``benchmarks/README.md``, "The numba backend's BLAS");
- ``scipy``: the BLAS scipy was built with (``scipy.linalg.cython_blas``, usually OpenBLAS), the
  one numba's ``np.dot`` calls, wherever MKL is not found (other platforms, torch builds without
  MKL) or ``PLASTICITY_BLAS=scipy`` asks for it.

Fallbacks. The fast path relies on MKL inside torch's library and on numba's threading layer
registering its ``get_num_threads``/``set_num_threads`` with LLVM (read and set from compiled
code; no private numba function is imported). Where MKL is expected but not found, or numba's
threading layer cannot be read (a new release of either), the package still imports and computes
the same results on scipy's BLAS (and, without numba's thread count, with compiled kernels on one
thread), with one ``RuntimeWarning`` saying why; :data:`FALLBACK` holds the reason.

Binding symbols at run time rather than baking in addresses keeps every kernel that multiplies
cacheable on disk (numba does not cache functions holding ctypes pointers). The choice is made
once per process; :data:`BLAS` names it, and runs on the numba backend record it in their
provenance (``blas`` attribute): the two libraries round differently in the last bits, and
neither is bitwise reproducible across thread counts.

Threads. MKL runs each product on ``numba.get_num_threads()`` threads (set per call, on the
calling thread only, and restored after: torch's own products in the same thread keep theirs),
so ``numba.set_num_threads`` or ``NUMBA_NUM_THREADS`` governs the whole backend. In a forked
child process (``multiprocessing``'s default start on Linux) products run on one thread, and the
numba backend's threaded kernels their serial twins (:func:`threads` says which): GNU OpenMP,
which MKL's threads come from, hangs when a forked child starts threads, and numba's ``omp``
layer terminates such a child. MKL's OpenMP
runtime is loaded as ``import torch`` loads it (``libtorch_global_deps``, global), so numba's
``omp`` threading layer, launched after it, shares it: with two runtimes, numba's threaded
kernels and MKL's products spun against each other (pc training at batch 1024 on 2 cores, in
``benchmarks/README.md``). scipy's BLAS keeps its own thread pool (``OPENBLAS_NUM_THREADS``,
``threadpoolctl``), which spins against numba's threaded kernels the same way. Two libraries
with several threads each in one process spin against each other too: on 2 cores, MKL products
beside OpenBLAS products (numpy's ``@`` in a user's loop, say) made both slower; with one
thread each, or only one library busy, nothing is lost.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform
import sys
import warnings
from pathlib import Path

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

__all__ = ["BLAS", "BLAS_CHOICES", "FALLBACK", "MKL_EXPECTED", "THREADS_PER_CALL", "gemm", "one_thread", "threads", "threads_back"]

#: Values of the ``PLASTICITY_BLAS`` environment variable: ``auto`` (the default: MKL where
#: found, else scipy's), ``mkl`` (an error where it is not found) or ``scipy``.
BLAS_CHOICES = ("auto", "mkl", "scipy")
_GEMM_SYMBOLS = {types.float32: "plasticity_blas_sgemm", types.float64: "plasticity_blas_dgemm"}
_THREADS_SYMBOL = "plasticity_blas_set_threads"
#: The calling thread's numba thread count, read and set from compiled code: numba's threading
#: layer's ``get_num_threads``/``set_num_threads`` (the C functions it registers with LLVM when
#: launched), bound by symbol so that the functions calling them stay in the disk cache (numba's
#: public functions hold ctypes pointers, and its compiled read is private).
_GET_NUMBA_THREADS_SYMBOL = "plasticity_numba_get_threads"
_SET_NUMBA_THREADS_SYMBOL = "plasticity_numba_set_threads"
#: Whether the installed torch is expected to carry MKL: its x86-64 Linux wheels link it in, the
#: platform the fast path was tested on (docs/backends.md); elsewhere scipy's BLAS is the norm.
MKL_EXPECTED = sys.platform == "linux" and platform.machine().lower() in ("x86_64", "amd64")


def _torch_library() -> Path | None:
    """The installed torch's ``libtorch_cpu`` shared library, located without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    names = {"linux": "libtorch_cpu.so", "darwin": "libtorch_cpu.dylib", "win32": "torch_cpu.dll"}
    path = Path(next(iter(spec.submodule_search_locations))) / "lib" / names.get(sys.platform, "libtorch_cpu.so")
    return path if path.exists() else None


def _fortran_gemm(function, dtype) -> bool:
    """Whether the Fortran ``?gemm`` ``function`` (ctypes) computes ``a @ b`` for fixed 2 x 3 and
    3 x 4 operands: a library found by name is checked to compute what its name says."""
    a = np.arange(1.0, 7.0, dtype=dtype).reshape(2, 3)
    b = np.arange(-6.0, 6.0, dtype=dtype).reshape(3, 4)
    out = np.zeros((2, 4), dtype)
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    ints = [ctypes.c_int(v) for v in (4, 2, 3, 4, 3, 4)]  # out.T = b.T @ a.T: m, n, k, lda, ldb, ldc
    no = ctypes.c_char(b"N")
    function(ctypes.byref(no), ctypes.byref(no), *map(ctypes.byref, ints[:3]), ctypes.byref(scalar(1.0)),
             b.ctypes.data_as(ctypes.c_void_p), ctypes.byref(ints[3]), a.ctypes.data_as(ctypes.c_void_p),
             ctypes.byref(ints[4]), ctypes.byref(scalar(0.0)), out.ctypes.data_as(ctypes.c_void_p), ctypes.byref(ints[5]))
    return np.array_equal(out, a @ b)


_MKL_FUNCTIONS = ("sgemm_", "dgemm_", "MKL_Set_Num_Threads_Local", "MKL_Get_Version_String")


def _mkl() -> tuple[tuple[dict[str, int], str] | None, str | None]:
    """Addresses of MKL's ``sgemm_``, ``dgemm_`` and ``MKL_Set_Num_Threads_Local`` in torch's
    library and MKL's version, or None and why not: the library or a symbol is missing, or a
    product is wrong."""
    path = _torch_library()
    if path is None:
        return None, "the installed torch has no libtorch_cpu library"
    try:
        # as `import torch` does: its OpenMP runtime (libgomp) global, so that numba's threading
        # layer, launched later, joins the one MKL's threads come from (with two runtimes, numba's
        # threaded kernels and MKL's products spun against each other; benchmarks/README.md)
        global_deps = path.with_name(path.name.replace("libtorch_cpu", "libtorch_global_deps"))
        if global_deps.exists():
            ctypes.CDLL(str(global_deps), mode=ctypes.RTLD_GLOBAL)
        library = ctypes.CDLL(str(path))
    except OSError as error:
        return None, f"{path} does not load ({error})"
    missing = [name for name in _MKL_FUNCTIONS if not hasattr(library, name)]
    if missing:
        return None, f"{path} does not export MKL's {', '.join(missing)}"
    functions = {name: getattr(library, name) for name in _MKL_FUNCTIONS}
    for name, dtype in (("sgemm_", np.float32), ("dgemm_", np.float64)):
        functions[name].restype = None
        if not _fortran_gemm(functions[name], dtype):
            return None, f"{path} exports MKL's {name}, but its product of a small test matrix was wrong"
    version = ctypes.create_string_buffer(256)
    functions["MKL_Get_Version_String"](version, ctypes.c_int(len(version)))
    addresses = {symbol: ctypes.cast(functions[name], ctypes.c_void_p).value
                 for symbol, name in ((_GEMM_SYMBOLS[types.float32], "sgemm_"), (_GEMM_SYMBOLS[types.float64], "dgemm_"),
                                      (_THREADS_SYMBOL, "MKL_Set_Num_Threads_Local"))}
    return (addresses, f"{version.value.decode(errors='replace').strip()} (torch's {path.name})"), None


@numba.cfunc(types.int32(), cache=True)
def _one_numba_thread():  # pragma: no cover - compiled
    """The thread count compiled code reads where numba's threading layer cannot be read: one."""
    return 1


@numba.cfunc(types.void(types.int32), cache=True)
def _keep_numba_threads(count):  # pragma: no cover - compiled
    """Setting the thread count where numba's threading layer cannot be set: a no-op."""


def _numba_threads() -> tuple[dict[str, int] | None, str | None]:
    """The addresses of numba's threading layer's ``get_num_threads`` and ``set_num_threads``, or
    None and why not."""
    try:
        numba.get_num_threads()  # public; launches the threading layer, which registers its functions with LLVM
        found = {symbol: llvm.address_of_symbol(name) for symbol, name in
                 ((_GET_NUMBA_THREADS_SYMBOL, "get_num_threads"), (_SET_NUMBA_THREADS_SYMBOL, "set_num_threads"))}
    except Exception as error:  # whatever a numba release changed: the fallback still runs
        return None, f"numba {numba.__version__}'s threading layer did not start ({type(error).__name__}: {error})"
    missing = [name for name, address in zip(("get_num_threads", "set_num_threads"), found.values()) if not address]
    if missing:
        return None, f"numba {numba.__version__}'s threading layer does not register {' and '.join(missing)} with LLVM"
    return found, None


@numba.cfunc(types.int32(types.int32), cache=True)
def _keep_threads(threads):  # pragma: no cover - compiled
    """scipy's BLAS keeps its own thread count: setting one is a no-op returning "not set"."""
    return 0


def _scipy() -> tuple[dict[str, int], str]:
    import scipy

    try:
        name = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except (KeyError, TypeError):
        name = "unknown BLAS"
    addresses = {_GEMM_SYMBOLS[types.float32]: get_cython_function_address("scipy.linalg.cython_blas", "sgemm"),
                 _GEMM_SYMBOLS[types.float64]: get_cython_function_address("scipy.linalg.cython_blas", "dgemm"),
                 _THREADS_SYMBOL: _keep_threads.address}
    return addresses, f"{name} (scipy {scipy.__version__})"


def _bind() -> tuple[str, str | None]:
    """Bind the symbols the compiled products and thread counts call, as ``PLASTICITY_BLAS``
    asks; the BLAS's name, and why the fast path is not taken where it should be (else None).

    The fast path is MKL's products on numba's thread count. Where numba's threading layer
    cannot be read (a numba release changed it), compiled code runs on one thread and products
    on scipy's BLAS; where MKL is expected (:data:`MKL_EXPECTED`) but not found, on scipy's BLAS.
    Either is one RuntimeWarning saying why; the package imports and computes the same either way.
    """
    choice = os.environ.get("PLASTICITY_BLAS", "auto").strip().lower() or "auto"
    if choice not in BLAS_CHOICES:
        raise ValueError(f"PLASTICITY_BLAS={choice!r} is not valid; valid values: {', '.join(BLAS_CHOICES)}")
    found, mkl_problem = _mkl() if choice != "scipy" else (None, None)
    # after MKL's OpenMP runtime is loaded: numba's omp layer, launched now, then shares it
    thread_functions, threads_problem = _numba_threads()
    if threads_problem is not None:
        found = None  # MKL runs each product on numba's thread count, which cannot be read
    if found is None and choice == "mkl":
        raise RuntimeError(
            f"PLASTICITY_BLAS=mkl, but MKL cannot be used: {threads_problem or mkl_problem}; "
            "unset it or set PLASTICITY_BLAS=scipy"
        )
    addresses, name = found or _scipy()
    if thread_functions is None:
        thread_functions = {_GET_NUMBA_THREADS_SYMBOL: _one_numba_thread.address,
                            _SET_NUMBA_THREADS_SYMBOL: _keep_numba_threads.address}
    for symbol, address in {**addresses, **thread_functions}.items():
        llvm.add_symbol(symbol, address)
    llvm.add_symbol(_THREAD_CAP_SYMBOL, ctypes.addressof(_THREAD_CAP))
    if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere processes are spawned, not forked
        os.register_at_fork(after_in_child=_one_thread_after_fork)
    reasons = [threads_problem] if threads_problem else []
    if found is None and mkl_problem and choice == "auto" and MKL_EXPECTED:
        reasons.append(mkl_problem)
    if not reasons:
        return (f"MKL {name}" if found else name), None
    where = "compiled kernels on one thread and " if threads_problem else ""
    fallback = f"{'; '.join(reasons)}: the numba backend runs {where}matrix products on {name}"
    warnings.warn(
        f"plasticity: {fallback} (slower, same results; docs/backends.md lists the tested versions)",
        RuntimeWarning, stacklevel=2,
    )
    return name, fallback


#: The most threads a product may run on, read by the compiled products: unbounded, and 1 in a
#: forked child (see the module docstring).
_THREAD_CAP = ctypes.c_int32(2**31 - 1)
_THREAD_CAP_SYMBOL = "plasticity_blas_thread_cap"


def _one_thread_after_fork() -> None:
    _THREAD_CAP.value = 1


#: The BLAS every product of the numba backend runs on, e.g. ``"MKL Intel(R) oneAPI Math Kernel
#: Library Version 2024.2 ... (torch's libtorch_cpu.so)"``; and why it is not the fast path where
#: that was expected (None when it is, or when scipy's BLAS was asked for or is the norm here).
BLAS, FALLBACK = _bind()
#: Whether each product runs on the calling thread's numba thread count (MKL); scipy's BLAS keeps
#: its own pool, so products called from several threads at once would each start its threads.
THREADS_PER_CALL = BLAS.startswith("MKL")


@intrinsic
def _call_gemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """The Fortran ``?gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`` call on
    the arrays' data, every argument passed by address as Fortran expects; the dtype of ``c``
    picks ``s`` or ``d``."""
    if not all(isinstance(x, types.Array) for x in (a, b, c)) or c.dtype not in _GEMM_SYMBOLS or not a.dtype == b.dtype == c.dtype:
        return None
    dtype = c.dtype

    def codegen(context, builder, signature, args):
        values = dict(zip(("transa", "transb", "m", "n", "k", "alpha", "a", "lda", "b", "ldb", "beta", "c", "ldc"), args))
        argtypes = dict(zip(values, signature.args))

        def by_address(name, to):
            return cgutils.alloca_once_value(builder, context.cast(builder, values[name], argtypes[name], to))

        def data(name):
            return builder.bitcast(context.make_array(argtypes[name])(context, builder, values[name]).data,
                                   context.get_value_type(dtype).as_pointer())

        char, integer, scalar = ir.IntType(8).as_pointer(), ir.IntType(32).as_pointer(), context.get_value_type(dtype).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [char, char, integer, integer, integer, scalar, scalar, integer, scalar, integer,
                                               scalar, scalar, integer])
        function = cgutils.get_or_insert_function(builder.module, fnty, _GEMM_SYMBOLS[dtype])
        builder.call(function, [
            by_address("transa", types.uint8), by_address("transb", types.uint8),
            by_address("m", types.int32), by_address("n", types.int32), by_address("k", types.int32),
            by_address("alpha", dtype), data("a"), by_address("lda", types.int32), data("b"), by_address("ldb", types.int32),
            by_address("beta", dtype), data("c"), by_address("ldc", types.int32),
        ])
        return context.get_dummy_value()

    return types.void(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), codegen


@intrinsic
def _thread_cap(typingctx):
    """The value of :data:`_THREAD_CAP`, read where the compiled code runs (not frozen at compile time)."""

    def codegen(context, builder, signature, args):
        variable = builder.module.globals.get(_THREAD_CAP_SYMBOL)
        if variable is None:
            variable = ir.GlobalVariable(builder.module, ir.IntType(32), _THREAD_CAP_SYMBOL)
            variable.linkage = "external"
        return builder.load(variable)

    return types.int32(), codegen


@intrinsic
def _set_threads(typingctx, threads):
    """Set the calling thread's BLAS thread count (0: the library's global setting); the previous one."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32)])
        function = cgutils.get_or_insert_function(builder.module, fnty, _THREADS_SYMBOL)
        return builder.call(function, [context.cast(builder, args[0], signature.args[0], types.int32)])

    return types.int32(threads), codegen


@intrinsic
def _set_numba_threads(typingctx, count):
    """``numba.set_num_threads(count)`` for the calling thread, from compiled code that stays
    cacheable (the public function holds a ctypes pointer); :func:`_bind` bound the threading
    layer's function (or a no-op) to the symbol it calls."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(32)])
        function = cgutils.get_or_insert_function(builder.module, fnty, _SET_NUMBA_THREADS_SYMBOL)
        builder.call(function, [context.cast(builder, args[0], signature.args[0], types.int32)])
        return context.get_dummy_value()

    return types.void(count), codegen


@intrinsic
def _numba_threads_now(typingctx):
    """``numba.get_num_threads()`` of the calling thread, from compiled code that stays cacheable;
    :func:`_bind` bound the threading layer's function (or one returning 1) to the symbol it calls."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty, _GET_NUMBA_THREADS_SYMBOL), [])

    return types.int32(), codegen


_N, _T = ord("N"), ord("T")
_JIT = dict(cache=True, nogil=True)


@numba.njit(**_JIT)
def threads():  # pragma: no cover - compiled
    """The threads compiled code may use now: numba's thread count, 1 in a forked child (products
    and threaded kernels alike: GNU OpenMP hangs or, in numba's ``omp`` layer, terminates a forked
    child that starts threads)."""
    return min(_numba_threads_now(), _thread_cap())


@numba.njit(**_JIT)
def one_thread():  # pragma: no cover - compiled
    """Limit the calling thread to one thread (its kernels serial, its products on one BLAS
    thread); the count it had, for :func:`threads_back`."""
    count = _numba_threads_now()
    _set_numba_threads(1)
    return count


@numba.njit(**_JIT)
def threads_back(count):  # pragma: no cover - compiled
    """Give the calling thread back the thread count :func:`one_thread` returned."""
    _set_numba_threads(count)


@numba.njit(**_JIT)
def _fortran_view(x):  # pragma: no cover - compiled
    """How BLAS reads the 2-d array ``x`` transposed, as a column-major matrix: (``N`` when its
    memory is that of ``x.T`` in column-major order, ``T`` when it is that of ``x``, 0 when
    neither), and the leading dimension."""
    rows, columns = x.shape
    row_step, column_step = x.strides[0] // x.itemsize, x.strides[1] // x.itemsize
    if (column_step == 1 or columns == 1) and (row_step >= columns or rows == 1):
        return _N, max(row_step if rows > 1 else columns, 1)
    if (row_step == 1 or rows == 1) and (column_step >= rows or columns == 1):
        return _T, max(column_step if columns > 1 else rows, 1)
    return 0, 0


@numba.njit(**_JIT)
def gemm(alpha, a, b, beta, out):  # pragma: no cover - compiled
    """``out = alpha * a @ b + beta * out`` in place, one BLAS call without copies.

    ``a`` (m, k), ``b`` (k, n) and ``out`` (m, n) share a float dtype; ``a`` and ``b`` are
    row- or column-major (a weight matrix, its ``.T``, a block of rows), ``out`` has
    contiguous rows. BLAS works column-major, so it computes ``out.T = b.T @ a.T``. Operands
    of other layouts go through ``np.dot`` (a copy). With ``beta = 0``, ``out`` is only written.
    """
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k or out.shape[0] != m or out.shape[1] != n:
        raise ValueError("gemm: shapes do not match (a is m x k, b k x n, out m x n)")
    if m == 0 or n == 0:
        return
    transa, lda = _fortran_view(b)
    transb, ldb = _fortran_view(a)
    transc, ldc = _fortran_view(out)
    if k == 0 or transa == 0 or transb == 0 or transc != _N:
        product = np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b))
        for i in range(m):
            for j in range(n):
                out[i, j] = alpha * product[i, j] + (beta * out[i, j] if beta != 0 else 0)
        return
    previous = _set_threads(threads())
    _call_gemm(transa, transb, n, m, k, alpha, b, lda, a, ldb, beta, out, ldc)
    _set_threads(previous)

