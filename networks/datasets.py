"""Classification data sets for the learning protocols, all offline.

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes;
  Alpaydin & Kaynak 1998, UCI), pixels scaled to [0, 1]. Nothing is downloaded.
* ``"xor"``: the four corners of the unit square labelled by exclusive or (2 classes); the
  training and test sets are the same four points.
* a path to a local MNIST-style file: an ``.npz`` holding ``x_train, y_train, x_test, y_test``
  (the layout of ``mnist.npz``) or ``x, y``; or an IDX images file
  (``train-images-idx3-ubyte[.gz]``, LeCun et al. 1998; Fashion-MNIST, Xiao et al. 2017 uses
  the same format) whose labels file (``...-labels-idx1-ubyte[.gz]``) lies beside it, or a
  directory holding the four standard IDX files. Pixels are scaled to [0, 1].

When a file provides its own train/test split it is used as is; otherwise the examples
are split with a seeded shuffle, ``test_fraction`` of them for testing.
"""

from __future__ import annotations

import gzip
import pathlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from plasticity.errors import ConfigError

__all__ = ["Dataset", "load_dataset", "read_idx", "digits", "BUILTIN_DATASETS"]

#: Names of the built-in data sets; anything else is read as a path.
BUILTIN_DATASETS = ("digits", "xor")

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Dataset:
    """Inputs ``(examples, features)`` as float64 and integer labels ``0 .. n_classes - 1``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.data.astype(np.float64) / 16.0, bunch.target.copy()
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def digits() -> np.ndarray:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 64 pixels) scaled to [0, 1].

    Alpaydin and Kaynak (1998), UCI optical recognition of handwritten digits; shipped
    with scikit-learn, so no download is needed. Returns a read-only (1797, 64) array.
    """
    return _digits()[0]


def load_dataset(dataset: str, *, test_fraction: float = 0.2, seed: int | np.random.SeedSequence = 0) -> Dataset:
    """The data set ``dataset`` (a built-in name or a local path), split for training and testing."""
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError(f"dataset must be one of {', '.join(BUILTIN_DATASETS)} or a path to a local file, got {dataset!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be a number strictly between 0 and 1, got {test_fraction!r}")
    if dataset == "digits":
        images, labels = _digits()
        return _split("digits", images, labels, test_fraction, seed)
    if dataset == "xor":
        x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        y = np.array([0, 1, 1, 0])
        return Dataset("xor", x, y, x.copy(), y.copy(), 2)
    path = pathlib.Path(dataset).expanduser()
    if not path.exists():
        raise ConfigError(
            f"dataset {dataset!r} is neither a built-in data set ({', '.join(BUILTIN_DATASETS)}) nor an existing path"
        )
    if path.is_dir():
        return _load_idx_directory(path)
    if path.suffix == ".npz":
        return _load_npz(path, test_fraction, seed)
    if "idx" in path.name:
        return _load_idx_pair(path, test_fraction, seed)
    raise ConfigError(
        f"dataset file {str(path)!r} is not an .npz file or an IDX file (name containing 'idx', e.g. "
        "train-images-idx3-ubyte.gz)"
    )


def read_idx(path: str | pathlib.Path) -> np.ndarray:
    """The array stored in an IDX file (optionally gzip-compressed), checked against its header."""
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] < 1:
        raise ConfigError(f"{str(path)!r} is not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(f"{str(path)!r}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ConfigError(
            f"{str(path)!r}: the header declares shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _split(name: str, x, y, test_fraction: float, seed) -> Dataset:
    x, y = _check_pair(name, x, y)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = max(1, int(round(test_fraction * len(y))))
    if n_test >= len(y):
        raise ConfigError(f"test_fraction {test_fraction} leaves no training examples in {name} ({len(y)} examples)")
    test, train = order[:n_test], order[n_test:]
    classes = int(max(y.max(), 0)) + 1
    return Dataset(name, x[train], y[train], x[test], y[test], classes)


def _check_pair(name: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2:
        raise ConfigError(f"{name}: inputs must have shape (examples, features...) , got {x.shape}")
    if y.ndim != 1:
        raise ConfigError(f"{name}: labels must have shape (examples,), got {y.shape}")
    if len(x) != len(y):
        raise ConfigError(f"{name}: {len(x)} inputs but {len(y)} labels")
    if len(y) == 0:
        raise ConfigError(f"{name}: the data set is empty")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ConfigError(f"{name}: labels must be integers, got dtype {y.dtype}")
        y = y.astype(np.int64)
    if y.min() < 0:
        raise ConfigError(f"{name}: labels must be non-negative class indices, found {int(y.min())}")
    integer_pixels = np.issubdtype(x.dtype, np.integer)
    x = x.reshape(len(x), -1).astype(np.float64)
    if integer_pixels:
        x = x / 255.0
    if not np.isfinite(x).all():
        raise ConfigError(f"{name}: inputs contain NaN or infinite values")
    return x, y.astype(np.int64)


def _load_npz(path: pathlib.Path, test_fraction: float, seed) -> Dataset:
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        if {"x_train", "y_train", "x_test", "y_test"} <= keys:
            x_train, y_train = _check_pair(path.name, archive["x_train"], archive["y_train"])
            x_test, y_test = _check_pair(path.name, archive["x_test"], archive["y_test"])
            return _paired(path.name, x_train, y_train, x_test, y_test)
        if {"x", "y"} <= keys:
            return _split(path.name, archive["x"], archive["y"], test_fraction, seed)
    raise ConfigError(
        f"{str(path)!r} must hold arrays x_train, y_train, x_test, y_test (or x, y); it holds {', '.join(sorted(keys))}"
    )


def _paired(name: str, x_train, y_train, x_test, y_test) -> Dataset:
    if x_train.shape[1] != x_test.shape[1]:
        raise ConfigError(f"{name}: training inputs have {x_train.shape[1]} features but test inputs {x_test.shape[1]}")
    classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(name, x_train, y_train, x_test, y_test, classes)


def _labels_beside(images: pathlib.Path) -> pathlib.Path:
    name = images.name
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1")):
        if a in name:
            labels = images.with_name(name.replace(a, b))
            if labels.exists():
                return labels
            raise ConfigError(f"IDX images file {str(images)!r} has no labels file {labels.name!r} beside it")
    raise ConfigError(f"{str(images)!r}: expected an IDX images file named like 'train-images-idx3-ubyte[.gz]'")


def _load_idx_pair(images: pathlib.Path, test_fraction: float, seed) -> Dataset:
    return _split(images.name, read_idx(images), read_idx(_labels_beside(images)), test_fraction, seed)


def _load_idx_directory(directory: pathlib.Path) -> Dataset:
    found = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        candidates = sorted(directory.glob(f"{prefix}-images*idx3-ubyte*"))
        if not candidates:
            raise ConfigError(
                f"directory {str(directory)!r} has no {prefix}-images-idx3-ubyte[.gz] file (the MNIST layout)"
            )
        images = candidates[0]
        found[split] = _check_pair(images.name, read_idx(images), read_idx(_labels_beside(images)))
    return _paired(directory.name, *found["train"], *found["test"])
