"""Small image sets for the associative memories, available offline."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["digits"]


@lru_cache(maxsize=1)
def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    images = load_digits().data.astype(np.float64) / 16.0
    images.setflags(write=False)
    return images


def digits() -> np.ndarray:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 64 pixels) scaled to [0, 1].

    Alpaydin and Kaynak (1998), UCI optical recognition of handwritten digits; shipped
    with scikit-learn, so no download is needed. Returns a read-only (1797, 64) array.
    """
    return _digits()
