"""Named numpy arrays in one file, written atomically and mapped read-only: what several processes read the same
way is then one copy in the page cache, not one per process.

The layout is safetensors' (an 8-byte header length, a JSON header of dtype, shape and offsets, the arrays one
after the other, each aligned to its item size), written by the ``safetensors`` package; reading maps the file with
``numpy.memmap`` and hands out views of it, so nothing is read until it is touched."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from index.files import replacing

_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U64": np.uint64,
           "U8": np.uint8, "BOOL": np.bool_}


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write ``arrays`` and string ``metadata`` to ``path``, replacing it whole (``index.files.replacing``): a
    process mapping the previous file keeps reading it whole, one opening ``path`` afterwards gets the new one."""
    from safetensors.numpy import save_file

    with replacing(path) as tmp:
        save_file({name: np.ascontiguousarray(a) for name, a in arrays.items()}, str(tmp), metadata=dict(metadata))
        os.chmod(tmp, _created_mode())  # safetensors creates it 0600: the data dir's other files follow the umask


def _created_mode() -> int:
    """The mode of a file this process creates: 0666 less its umask (read from Linux's /proc; else 0644)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def mapped_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays of a file written by ``save_arrays`` (read-only views of one mapping) and its metadata; raises
    ``FileNotFoundError``, or ``ValueError`` for a file that is truncated or not in this layout."""
    mapping = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        (length,) = struct.unpack("<Q", mapping[:8].tobytes())
        header = json.loads(mapping[8:8 + length].tobytes())
        metadata = {str(k): str(v) for k, v in header.pop("__metadata__", {}).items()}
        start, arrays = 8 + length, {}
        for name, spec in header.items():
            dtype = np.dtype(_DTYPES[spec["dtype"]])
            begin, end = (start + int(x) for x in spec["data_offsets"])
            shape = tuple(int(x) for x in spec["shape"])
            if not start <= begin <= end <= len(mapping) or end - begin != dtype.itemsize * int(np.prod(shape)):
                raise ValueError(f"array {name!r} runs past the end of the file or does not fit its shape")
            arrays[name] = mapping[begin:end].view(dtype).reshape(shape)
    except (struct.error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not an array file: {exc}") from exc
    return arrays, metadata
