"""Named numpy arrays in one file, written atomically and mapped read-only: what several processes read the same
way is then one copy in the page cache, not one per process.

The layout is safetensors' (an 8-byte header length, a JSON header of dtype, shape and offsets, the arrays one
after the other, each aligned to its item size), written by the ``safetensors`` package; reading maps the file with
``numpy.memmap`` and hands out views of it, so nothing is read until it is touched."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from index.files import replacing

_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U64": np.uint64,
           "U8": np.uint8, "BOOL": np.bool_}
_NAMES = {np.dtype(kind): name for name, kind in _DTYPES.items()}


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write ``arrays`` and string ``metadata`` to ``path``, replacing it whole (``index.files.replacing``): a
    process mapping the previous file keeps reading it whole, one opening ``path`` afterwards gets the new one."""
    from safetensors.numpy import save_file

    with replacing(path) as tmp:
        save_file({name: np.ascontiguousarray(a) for name, a in arrays.items()}, str(tmp), metadata=dict(metadata))
        os.chmod(tmp, _created_mode())  # safetensors creates it 0600: the data dir's other files follow the umask


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an array lies in an array file: its type, shape and the byte offset of its first item."""

    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int


@contextmanager
def writing_arrays(path: Path, shapes: Mapping[str, tuple[type, tuple[int, ...]]],
                   metadata: Mapping[str, str]) -> Iterator[tuple[int, dict[str, Stored]]]:
    """A new file of zero-filled arrays (``shapes``: name -> dtype, shape) that replaces ``path`` when the block
    ends (as ``save_arrays`` does). The block writes them at the offsets it is given, through the file descriptor
    it is given (``os.pwrite``): what is written is neither held in memory nor mapped (a mapping's dirty pages
    would count in the process's memory until it ends). The arrays lie largest item size first, each aligned to
    it, in the layout ``read_layout`` reads."""
    names = sorted(shapes, key=lambda name: -np.dtype(shapes[name][0]).itemsize)
    header: dict[str, object] = {}
    offsets, end = {}, 0
    for name in names:
        dtype, shape = np.dtype(shapes[name][0]), shapes[name][1]
        size = dtype.itemsize * int(np.prod(shape))
        header[name] = {"dtype": _NAMES[dtype], "shape": list(shape), "data_offsets": [end, end + size]}
        offsets[name], end = end, end + size
    header["__metadata__"] = dict(metadata)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 64)  # the arrays start 64-byte aligned
    start = 8 + len(text)
    layout = {name: Stored(np.dtype(shapes[name][0]), shapes[name][1], start + offsets[name]) for name in names}
    with replacing(path) as tmp:
        with open(tmp, "wb") as out:
            out.write(struct.pack("<Q", len(text)) + text)
            out.truncate(start + end)
            out.flush()
            yield out.fileno(), layout
        os.chmod(tmp, _created_mode())


def _created_mode() -> int:
    """The mode of a file this process creates: 0666 less its umask (read from Linux's /proc; else 0644)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def read_layout(file: BinaryIO) -> tuple[dict[str, Stored], dict[str, str]]:
    """The arrays of an open file written by ``save_arrays`` or ``writing_arrays`` (where each lies) and its
    metadata, from its header; raises ``ValueError`` for a file that is truncated or not in this layout. Read
    from the file the caller then reads or maps, not from its path again: a file replaced in between would give
    another file's data at this one's offsets."""
    size = os.fstat(file.fileno()).st_size
    try:
        (length,) = struct.unpack("<Q", os.pread(file.fileno(), 8, 0))
        if length > size - 8:
            raise ValueError("its header runs past the end of the file")
        header = json.loads(os.pread(file.fileno(), length, 8))
        metadata = {str(k): str(v) for k, v in header.pop("__metadata__", {}).items()}
        start, layout = 8 + length, {}
        for name, spec in header.items():
            dtype = np.dtype(_DTYPES[spec["dtype"]])
            begin, end = (start + int(x) for x in spec["data_offsets"])
            shape = tuple(int(x) for x in spec["shape"])
            if not start <= begin <= end <= size or end - begin != dtype.itemsize * int(np.prod(shape)):
                raise ValueError(f"array {name!r} runs past the end of the file or does not fit its shape")
            layout[name] = Stored(dtype, shape, begin)
    except (struct.error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{file.name} is not an array file: {exc}") from exc
    return layout, metadata


def mapped_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays of an array file (read-only views of one mapping) and its metadata; raises
    ``FileNotFoundError``, or ``ValueError`` as ``read_layout`` does."""
    with open(path, "rb") as file:
        layout, metadata = read_layout(file)
        mapping = np.memmap(file, dtype=np.uint8, mode="r")  # this file, whatever the path names by now
    return {name: mapping[at.offset:at.offset + at.dtype.itemsize * int(np.prod(at.shape))].view(at.dtype)
            .reshape(at.shape) for name, at in layout.items()}, metadata


def saved_seq(path: Path) -> int:
    """The store sequence an array file's metadata records; -1 if there is no such file or none to read."""
    try:
        with open(path, "rb") as file:
            return int(read_layout(file)[1]["seq"])
    except (OSError, ValueError, KeyError):
        return -1
