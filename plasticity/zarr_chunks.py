"""One sweep point's chunks of a Zarr format 2 array, encoded and written in the calling thread.

A sweep store keeps each point in chunks of its own (one chunk of every variable per point), so
a point's write replaces whole chunks and never reads one back. zarr 3 writes a chunk through
its event loop's thread and hands the filters, the compressor and the file each to another
thread: about 1 ms a chunk, 14 ms for the 15 chunks of a capacity-curve point, which the sweep's
main thread spends while the points run on the same cores. :class:`PointChunks` does what
zarr's ``setitem`` does for a whole chunk, as the Zarr v2 specification defines it (the chunk in
the array's dtype and order, through the array's filters, then its compressor: the numcodecs
codecs zarr parsed from the metadata), and writes the file as zarr does, to a temporary file
renamed over the chunk, so a killed write leaves the old chunk or the new one; and, as zarr
does, a chunk holding only the fill value is removed instead of written (a flag still False, an
empty error message: two fewer files a point). The test suite writes points both ways and
compares the files.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from numcodecs.compat import ensure_bytes

from plasticity.errors import ConfigError

__all__ = ["PointChunks"]


class PointChunks:
    """Writes the chunk of one point of the Zarr v2 array ``array`` (a ``zarr.Array`` opened from
    the folder ``folder``) whose first ``point_dims`` dimensions are the sweep's: chunked one
    point at a time along them, whole along the rest."""

    def __init__(self, folder: Path, array: Any, point_dims: int):
        metadata = array.metadata
        if metadata.zarr_format != 2:
            raise ConfigError(f"{str(folder)!r} is a Zarr format {metadata.zarr_format} array; sweep stores use format 2")
        point, inner = metadata.chunks[:point_dims], metadata.chunks[point_dims:]
        if any(size != 1 for size in point) or tuple(inner) != tuple(metadata.shape[point_dims:]):
            raise ConfigError(
                f"{str(folder)!r} has chunks {tuple(metadata.chunks)} for shape {tuple(metadata.shape)}; a sweep "
                f"store keeps one point per chunk (1 along each of its first {point_dims} dimensions)"
            )
        self.folder = folder
        self._metadata = metadata
        self._inner = (0,) * len(inner)
        self._dtype = metadata.dtype.to_native_dtype()
        fill = metadata.fill_value if metadata.fill_value is not None else metadata.dtype.default_scalar()
        self._fill = np.asarray(fill, dtype=self._dtype)
        # zarr matches a real zero fill bit for bit, so that -0.0 is kept; any NaN matches a NaN fill.
        self._fill_bits = (np.frombuffer(self._fill.tobytes(), np.uint8)
                           if self._dtype.kind == "f" and self._fill == 0 else None)

    def _only_fill(self, chunk: np.ndarray) -> bool:
        """Whether ``chunk`` reads back the same when its file is absent."""
        if self._fill_bits is not None:
            return bool((chunk.reshape(-1).view(np.uint8).reshape(-1, chunk.itemsize) == self._fill_bits).all())
        return bool(np.array_equal(chunk, np.broadcast_to(self._fill, chunk.shape),
                                   equal_nan=chunk.dtype.kind in "fc"))

    def _chunk(self, value: Any) -> np.ndarray:
        metadata = self._metadata
        return np.asarray(value).reshape(metadata.chunks).astype(self._dtype, order=metadata.order, copy=False)

    def _encode(self, chunk: np.ndarray) -> bytes:
        metadata = self._metadata
        for codec in metadata.filters or ():
            chunk = codec.encode(chunk)
        if np.asarray(chunk).dtype == object:
            raise ConfigError(f"{str(self.folder)!r} holds objects but has no filter that encodes them")
        return ensure_bytes(metadata.compressor.encode(chunk) if metadata.compressor is not None else chunk)

    def write(self, position: tuple[int, ...], value: Any) -> None:
        """Replace the chunk of the point at ``position`` (its index along the sweep's dimensions)."""
        target = self.folder / self._metadata.encode_chunk_key((*position, *self._inner))
        chunk = self._chunk(value)
        if self._only_fill(chunk):
            target.unlink(missing_ok=True)
            return
        data = self._encode(chunk)
        temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(temporary, "wb") as file:
                file.write(data)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
