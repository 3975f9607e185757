"""A store's integrity: one writer at a time, and damage found before it is trusted.

**The lock.** A sweep holds ``.NAME.lock`` beside the store ``NAME`` while it
writes (beside, not inside: Zarr clients warn about files they do not know in
a store): the file is locked with ``flock`` and holds the writer's host, pid,
start time and command, and is removed when the writer finishes. A second
writer gets a :class:`StoreLockedError` naming them. The operating system
releases an ``flock`` when its process ends, however it ends, so a lock file
left by a killed sweep is found unlocked: the next writer takes it over and
says whose it was. Locks need a file system with ``flock`` (local disks; NFS
v4 maps it onto its own locks).

**Damage.** :func:`check_metadata` reads every metadata file of a Zarr v2 store
(``.zgroup``, ``.zattrs``, ``.zmetadata``, each array's ``.zarray`` and
``.zattrs``) and names the first one that is missing or not JSON.
A sweep point's ``done`` flag comes with ``point_checksum``, a hash of what the
point wrote (:func:`point_checksum`); :func:`verify_points` reads every done
point back and lists those whose chunks are missing, unreadable or different.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from plasticity.errors import ConfigError
from plasticity.provenance import now_iso

__all__ = [
    "lock_path",
    "StoreLockedError",
    "StoreLock",
    "acquire_lock",
    "lock_holder",
    "check_unlocked",
    "check_metadata",
    "point_checksum",
    "Damage",
    "verify_points",
]

class StoreLockedError(ConfigError):
    """Another process is writing the store; the message names it (host, pid, start time)."""


def _describe_holder(record: dict[str, Any]) -> str:
    parts = [f"pid {record.get('pid', '?')} on host {record.get('host', '?')}",
             f"started {record.get('start_time', '?')}"]
    if record.get("command"):
        parts.append(f"command: {record['command']}")
    return ", ".join(parts)


def _read_record(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 65536).decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return {"host": "?", "pid": "?", "start_time": "?", "command": f"(unreadable lock record {text[:60]!r})"}
    return record if isinstance(record, dict) else None


def lock_path(store: str | Path) -> Path:
    """The lock file of ``store``: ``.NAME.lock`` in the same folder."""
    store = Path(store)
    return store.parent / f".{store.name}.lock"


@dataclass
class StoreLock:
    """A held lock on a store. ``taken_over`` is the record of a writer that ended without releasing it."""

    store: Path
    fd: int
    taken_over: dict[str, Any] | None = None

    def release(self) -> None:
        """Remove the lock file, then unlock (a process that opened it meanwhile sees it removed)."""
        if self.fd < 0:
            return
        try:
            lock_path(self.store).unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = -1

    def takeover_note(self) -> str | None:
        if self.taken_over is None:
            return None
        return (f"took over the lock of {self.store}, left by a writer that stopped without releasing it "
                f"(killed?): {_describe_holder(self.taken_over)}")

    def __enter__(self) -> "StoreLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(fd: int, store: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise ConfigError(
            f"cannot lock {store}: its file system does not support flock ({error}); "
            "write the store on a local disk"
        ) from error


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def acquire_lock(store: str | Path, command: str | None = None) -> StoreLock:
    """Lock ``store`` (existing or not yet created) for writing, or raise :class:`StoreLockedError`
    naming the process that holds it."""
    store = Path(store)
    path = lock_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd, store):
                holder = _read_record(fd) or {}
                raise StoreLockedError(
                    f"{str(store)!r} is being written by another sweep ({_describe_holder(holder)}); "
                    "wait for it to finish or stop it, then run again with --resume"
                )
            if not _same_file(fd, path):  # its holder removed it between our open and our lock
                os.close(fd)
                continue
            left = _read_record(fd)
            record = {"host": socket.gethostname(), "pid": os.getpid(), "start_time": now_iso(),
                      "command": command if command is not None else " ".join(sys.argv)}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(record).encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return StoreLock(store, fd, left)


def lock_holder(store: str | Path) -> dict[str, Any] | None:
    """The record of the live process writing ``store``, or None when nobody holds its lock."""
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if _try_lock(fd, Path(store)):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _read_record(fd) or {}
    finally:
        os.close(fd)


def check_unlocked(store: str | Path) -> None:
    """Raise :class:`StoreLockedError` when a live process is writing ``store``."""
    holder = lock_holder(store)
    if holder is not None:
        raise StoreLockedError(f"{str(store)!r} is being written by another sweep ({_describe_holder(holder)})")


# ----------------------------------------------------------------------------- metadata


def _load_json(path: Path, store: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"store {str(store)!r} is damaged: its metadata file {path} is missing") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"store {str(store)!r} is damaged: its metadata file {path} is not valid JSON "
            f"(truncated or overwritten? {error})"
        ) from None


def _check_members(store: Path, group: Path, listed: set[str]) -> None:
    """Every array and subgroup folder under ``group`` has readable metadata."""
    for folder in sorted(p for p in group.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (folder / ".zarray").exists():
            _load_json(folder / ".zarray", store)
        elif (folder / ".zgroup").exists():
            _load_json(folder / ".zgroup", store)
            _check_members(store, folder, listed)
        elif folder.relative_to(store).as_posix() in listed or any(folder.iterdir()):
            raise ConfigError(f"store {str(store)!r} is damaged: {folder} holds no array metadata (.zarray)")
        if (folder / ".zattrs").exists():
            _load_json(folder / ".zattrs", store)


def check_metadata(store: str | Path) -> dict[str, Any]:
    """Read every metadata file of the Zarr v2 store ``store``; a missing or unreadable one is a
    :class:`ConfigError` naming the file. Returns the group's attributes."""
    store = Path(store)
    _load_json(store / ".zgroup", store)
    attrs = _load_json(store / ".zattrs", store) if (store / ".zattrs").exists() else {}
    listed: set[str] = set()
    if (store / ".zmetadata").exists():
        consolidated = _load_json(store / ".zmetadata", store)
        entries = consolidated.get("metadata", {}) if isinstance(consolidated, dict) else {}
        listed = {key.rpartition("/")[0] for key in entries if key.endswith("/.zarray")}
        for key in sorted(entries):
            if key.endswith((".zarray", ".zgroup")) and not (store / key).exists():
                raise ConfigError(
                    f"store {str(store)!r} is damaged: the metadata file {store / key} of array "
                    f"{key.rpartition('/')[0]!r} is missing (the store's consolidated metadata lists it)"
                )
    _check_members(store, store, listed)
    if attrs.get("store_kind") == "sweep":
        expected = set(json.loads(attrs.get("sweep_dims", "[]")))
        if "data_signature" in attrs:
            expected |= set(json.loads(attrs["data_signature"])["variables"])
        for name in sorted(expected):
            if not (store / name / ".zarray").exists():
                raise ConfigError(
                    f"store {str(store)!r} is damaged: the array {name!r} it was written with has no "
                    f"metadata file {store / name / '.zarray'}"
                )
    return attrs


# ----------------------------------------------------------------------------- checksums


def _canonical(value: np.ndarray) -> np.ndarray:
    value = np.ascontiguousarray(value)
    if value.dtype.kind in "fc" and np.isnan(value).any():
        # A NaN reads back as the fill value's NaN when its chunk held nothing else.
        value = np.where(np.isnan(value), np.array(np.nan, dtype=value.dtype), value)
    return value


def point_checksum(values: dict[str, np.ndarray]) -> int:
    """A 64-bit hash of a point's data: each variable's name, dtype, shape and bytes, by name."""
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(values):
        value = _canonical(np.asarray(values[name]))
        digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return int.from_bytes(digest.digest(), "little")


@dataclass(frozen=True)
class Damage:
    """A done point whose stored data is not what it wrote."""

    index: int
    position: tuple[int, ...]
    reason: str


def _chunk_file(store: Path, name: str, array: Any, position: tuple[int, ...]) -> Path:
    inner = (0,) * (len(array.shape) - len(position))
    return store / name / array.metadata.encode_chunk_key((*position, *inner))


def _read_each(array: Any, positions: Iterable[tuple[int, ...]]) -> tuple[dict, dict]:
    values, errors = {}, {}
    for position in positions:
        try:
            values[position] = np.asarray(array[position])
        except Exception as error:  # a chunk that does not decode: damage, reported per point
            errors[position] = f"{type(error).__name__}: {error}"
    return values, errors


def verify_points(store: str | Path, variables: list[str]) -> tuple[list[Damage], int]:
    """Check every done point of the sweep store ``store`` against its checksum.

    ``variables`` are the protocol's variables (the store's ``data_signature``).
    Returns the damaged points and the number of done points checked.
    A store written before checksums existed is checked for readable chunks only.
    """
    import zarr

    store = Path(store)
    group = zarr.open_group(store, mode="r", use_consolidated=False)
    shape = tuple(group["done"].shape)
    positions = [tuple(int(i) for i in p) for p in np.ndindex(*shape)]
    damage: dict[tuple[int, ...], str] = {}

    def read(name: str) -> dict[tuple[int, ...], np.ndarray]:
        array = group[name]
        try:
            whole = np.asarray(array[...])
            return {p: whole[p] for p in positions}
        except Exception:
            values, errors = _read_each(array, positions)
            for position, error in errors.items():
                damage.setdefault(position, f"chunk {_chunk_file(store, name, array, position)} is unreadable ({error})")
            return values

    done = read("done")
    checksums = read("point_checksum") if "point_checksum" in group else None
    data = {name: read(name) for name in variables}
    checked = 0
    found = []
    for position in positions:
        if position in done and not bool(done[position]):
            continue  # not done: run again by a resume whatever its chunks hold
        checked += 1
        if position not in damage and checksums is not None:
            got = point_checksum({name: data[name][position] for name in variables})
            if got != int(checksums[position]):
                chunks = [_chunk_file(store, name, group[name], position) for name in variables]
                missing = [str(chunk) for chunk in chunks if not chunk.exists()]
                if missing:
                    damage[position] = f"chunk {', '.join(missing)} is missing"
                else:
                    damage[position] = ("its data differs from what it wrote (checksum mismatch; chunks "
                                        + ", ".join(map(str, chunks)) + ")")
        if position in damage:
            found.append(Damage(int(np.ravel_multi_index(position, shape)), position, damage[position]))
    return found, checked
