"""Arrays whose data start on a 64-byte boundary.

numpy places a large array's data 16 bytes past a page boundary (where the allocator's header
ends), so its rows start off the 32- and 64-byte boundaries of vector loads and cache lines. MKL's
products (the numba backend's BLAS) run up to 1.8x slower on such operands on AMD EPYC CPUs:
``benchmarks/README.md``, "Aligned state". Every state array and drive buffer is allocated here.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ALIGNMENT", "aligned_empty", "aligned_zeros"]

#: Bytes: a cache line, and the widest vector register (AVX-512).
ALIGNMENT = 64


def aligned_empty(shape: int | tuple[int, ...], dtype: str | np.dtype = "float64") -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` whose data start on a
    64-byte boundary: a view into a buffer 64 bytes larger than the data."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    size = math.prod(shape) * dtype.itemsize
    buffer = np.empty(size + ALIGNMENT, dtype=np.uint8)
    offset = -buffer.ctypes.data % ALIGNMENT
    return buffer[offset:offset + size].view(dtype).reshape(shape)


def aligned_zeros(shape: int | tuple[int, ...], dtype: str | np.dtype = "float64") -> np.ndarray:
    """:func:`aligned_empty` filled with zeros."""
    array = aligned_empty(shape, dtype)
    array.fill(0)
    return array
