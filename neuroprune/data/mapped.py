"""Inputs kept in a float32 file mapped into memory (``data.loader.cache: disk``), for data
larger than memory.

The loader's batches are appended to one file per run as they stream (train, then
validation, then test), the file is mapped (``torch.from_file``), standardised in place chunk
by chunk, and each split's inputs are a view on the mapping: indexing a batch reads only its
rows from disk, and nothing holds the whole split in the process's memory. The file lives in
``data.loader.cache_dir`` (default ``data/`` in neuroprune's cache folder,
``$NEUROPRUNE_CACHE_DIR`` or ``~/.cache/neuroprune``; not the run folder: data is read before
any run folder exists, and the Python API may have none)
and is removed when the process that wrote it ends. A mapped tensor pickles as its file's
path and its place in it (:class:`MappedRef`), so Ray actors reopen the file instead of
receiving the data: the cache folder must be on a filesystem every node sees.
"""

from __future__ import annotations

import atexit
import math
import os
import secrets
import shutil
import socket
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from .._system import cache_root, human
from ..errors import ConfigError, DataError

#: rows standardised (or checked) at a time: about this many bytes of a split in memory
CHUNK_BYTES = 64 << 20

_OPEN: weakref.WeakValueDictionary[str, torch.Tensor] = weakref.WeakValueDictionary()


def cache_folder(cache_dir: str | None) -> Path:
    """The folder of the mapped files, created, refused in one line when not writable."""
    folder = Path(cache_dir).expanduser() if cache_dir else cache_root() / "data"
    folder = folder.absolute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"data.loader.cache_dir: cannot create {folder} ({exc.strerror}); "
                          f"give a writable folder") from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"data.loader.cache_dir: {folder} is not a writable folder; give "
                          f"one you can write to")
    return folder


def mapped_file(t: torch.Tensor) -> str | None:
    """The file ``t``'s storage is mapped from, or None (an in-memory tensor)."""
    return t.untyped_storage().filename if isinstance(t, torch.Tensor) else None


def open_mapped(path: str, numel: int) -> torch.Tensor:
    """The whole file as a flat float32 tensor, mapped once per process."""
    base = _OPEN.get(path)
    if base is not None and base.numel() == numel:
        return base
    if not os.path.isfile(path) or os.path.getsize(path) != numel * 4:
        raise DataError(f"the data cache file {path} is missing or incomplete on "
                        f"{socket.gethostname()}; data.loader.cache_dir must be on a "
                        f"filesystem every node sees, and the run that wrote it still running")
    base = torch.from_file(path, shared=True, size=numel, dtype=torch.float32)
    _OPEN[path] = base
    return base


@dataclass(frozen=True)
class MappedRef:
    """A view on a mapped file, as it pickles: the path and the view's place in the file."""

    path: str
    numel: int
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @classmethod
    def of(cls, t: torch.Tensor) -> "MappedRef | None":
        path = mapped_file(t)
        if path is None:
            return None
        numel = t.untyped_storage().nbytes() // t.element_size()
        return cls(path, numel, t.storage_offset(), tuple(t.shape), tuple(t.stride()))

    def open(self) -> torch.Tensor:
        return open_mapped(self.path, self.numel).as_strided(self.size, self.stride,
                                                             self.offset)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


class DiskFile:
    """Batches of float32 inputs appended to one file in ``folder``, then mapped.

    ``rows`` (when the loaders know their length) sizes the free-space check made before the
    first byte is written; without it, space is checked as the file grows."""

    def __init__(self, folder: Path, rows: int | None = None):
        self.folder, self.expected = folder, rows
        self.path = folder / (f"splits-{socket.gethostname()}-{os.getpid()}-"
                              f"{secrets.token_hex(4)}.f32")
        self.free = shutil.disk_usage(folder).free
        self.rows, self.shape, self.file = 0, None, None

    def _refuse(self, need: int) -> None:
        self.discard()
        raise DataError(f"data.loader.cache_dir {self.folder}: the inputs need {human(need)} "
                        f"on disk, {human(self.free)} is free; "
                        f"free space, point cache_dir at a larger disk or use smaller images "
                        f"(data.image_size)")

    def write(self, x: torch.Tensor) -> None:
        """Append ``x`` ([B, ...], float32) to the file."""
        item = math.prod(x.shape[1:]) * 4
        if self.file is None:
            self.shape = tuple(x.shape[1:])
            if self.expected is not None and self.expected * item > self.free:
                self._refuse(self.expected * item)
            self.file = open(self.path, "xb")
            atexit.register(_remove, self.path)
        if (self.rows + len(x)) * item > self.free:
            self._refuse((self.rows + len(x)) * item)
        self.file.write(memoryview(x.contiguous().numpy()).cast("B"))
        self.rows += len(x)

    def finish(self) -> torch.Tensor:
        """The written rows, ``[rows, ...]``, as a view on the mapped file."""
        self.file.close()
        return open_mapped(str(self.path), self.rows * math.prod(self.shape)) \
            .view(self.rows, *self.shape)

    def discard(self) -> None:
        """Remove the file (a refused or failed read)."""
        if self.file is not None:
            self.file.close()
        _remove(self.path)


def standardise_in_place(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
    """``x = (x - mean) / std``, chunk by chunk (the same float32 operations as the
    in-memory path, so the same values), then flushed to the file."""
    rows = max(1, CHUNK_BYTES // max(1, math.prod(x.shape[1:]) * 4))
    with torch.no_grad():
        for s in range(0, len(x), rows):
            x[s:s + rows].sub_(mean).div_(std)
    path = mapped_file(x)
    if path is not None:  # other processes (Ray actors) reopen it: write it out
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is finite, checked chunk by chunk (a mapped split is never
    held in memory at once, nor a mask the size of it)."""
    if not x.is_floating_point():
        return True
    rows = max(1, CHUNK_BYTES // max(1, math.prod(x.shape[1:]) * x.element_size()))
    return all(bool(torch.isfinite(x[s:s + rows]).all()) for s in range(0, len(x), rows))
