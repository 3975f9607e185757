"""The disk cache of generated numba kernel modules.

A module's source text is written to ``<cache>/k<digest>.py``, where the digest is that of the
text, and imported with :mod:`importlib`; the kernels carry ``cache=True``, so numba stores their
machine code beside the module and a second process running the same model loads it instead of
compiling. The directory is ``$PLASTICITY_CACHE_DIR``, by default ``~/.cache/plasticity/kernels``.

A file is imported only if its content is what its name says: before an existing file is
imported, its bytes are hashed and compared with the digest in its name. A file that does not
match (truncated, edited, damaged on disk) is refused with a warning and written again from the
source, atomically (a temporary file renamed over it), with the bytecode Python cached for it
removed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

__all__ = ["cache_dir", "load_module", "is_cached"]

#: Modules whose compiled functions generated modules call (see :func:`_helpers_digest`).
_HELPER_MODULES = ("plasticity.backends.blas", "plasticity.backends.numba_kernels")
#: Hex digits of the SHA-256 digest in a module's file name.
_DIGEST_LENGTH = 24


def cache_dir() -> Path:
    """Directory of generated kernel modules: ``$PLASTICITY_CACHE_DIR`` or ``~/.cache/plasticity/kernels``."""
    configured = os.environ.get("PLASTICITY_CACHE_DIR")
    path = Path(configured) if configured else Path.home() / ".cache" / "plasticity" / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def _helpers_digest() -> str:
    """Digest of the compiled helpers generated modules call. numba's disk cache of a function
    does not notice a change in the functions it calls from other files, so the helpers' digest
    is part of every generated module's text (and file name). The helpers are found by module
    name, wherever their files are."""
    text = b"".join(Path(importlib.util.find_spec(name).origin).read_bytes() for name in _HELPER_MODULES)
    return _digest(text)


def _digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:_DIGEST_LENGTH]


def load_module(source: str) -> ModuleType:
    """Import ``source`` from ``<cache>/k<digest>.py`` (the text starts with a line naming the digest
    of the helpers it calls), writing the file atomically when it is new or does not match its
    digest."""
    text = f"# helpers {_helpers_digest()}\n{source}".encode()
    digest = _digest(text)
    name = f"plasticity_kernels_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = cache_dir() / f"k{digest}.py"
    if not _matches(path, digest):
        _write(path, text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def is_cached(source: str) -> bool:
    """Whether the module of ``source`` is loaded or its file and numba's index of its compiled
    functions are in the cache (loading it then reads machine code instead of compiling)."""
    text = f"# helpers {_helpers_digest()}\n{source}".encode()
    digest = _digest(text)
    if f"plasticity_kernels_{digest}" in sys.modules:
        return True
    path = cache_dir() / f"k{digest}.py"
    return path.exists() and any((path.parent / "__pycache__").glob(f"k{digest}.*.nbi"))


def _matches(path: Path, digest: str) -> bool:
    """Whether ``path`` exists and its content has ``digest``; warns about a file that does not."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return False
    if _digest(content) == digest:
        return True
    warnings.warn(
        f"kernel cache file {path} does not match the digest in its name (damaged or edited); "
        "it is not imported and is written again",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


def _write(path: Path, text: bytes) -> None:
    """Write ``text`` to ``path`` atomically and drop bytecode compiled from an earlier file there."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}", suffix=".tmp")
    with os.fdopen(handle, "wb") as stream:
        stream.write(text)
    os.replace(temporary, path)
    Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)
