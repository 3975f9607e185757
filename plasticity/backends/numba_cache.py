"""The disk cache of generated numba kernel modules.

A module's source text is written to ``<cache>/k<digest>.py``, where the digest is that of the
text, and imported with :mod:`importlib`; the kernels carry ``cache=True``, so numba stores their
machine code beside the module and a second process running the same model loads it instead of
compiling. The directory is ``$PLASTICITY_CACHE_DIR``, by default ``~/.cache/plasticity/kernels``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

__all__ = ["cache_dir", "load_module"]

#: Modules whose compiled functions generated modules call (see :func:`_helpers_digest`).
_HELPER_MODULES = ("plasticity.backends.blas", "plasticity.backends.numba_kernels")


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
    return hashlib.sha256(text).hexdigest()[:24]


def load_module(source: str) -> ModuleType:
    """Import ``source`` from ``<cache>/k<sha256>.py``, writing the file atomically if new (the
    text starts with a line naming the digest of the helpers it calls)."""
    source = f"# helpers {_helpers_digest()}\n{source}"
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    name = f"plasticity_kernels_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    directory = cache_dir()
    path = directory / f"k{digest}.py"
    if not path.exists():
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".k{digest}", suffix=".tmp")
        with os.fdopen(handle, "w") as stream:
            stream.write(source)
        os.replace(temporary, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
