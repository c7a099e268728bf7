"""Array files: written whole or not at all, mapped read-only, a replaced file never changing a live mapping."""

import os

import numpy as np
import pytest

from index.files import file_stamp
from recommender.arrayfile import mapped_arrays, save_arrays, writing_arrays

ARRAYS: dict[str, np.ndarray] = {"weights": np.linspace(0, 1, 7, dtype=np.float32), "rows": np.arange(5, dtype=np.int32),
          "keys": np.array([3, 1, 2], dtype=np.int64), "hashes": np.array([2**63 + 5, 7], dtype=np.uint64),
          "empty": np.zeros(0, dtype=np.int64)}


def test_arrays_and_metadata_come_back_as_written_and_read_only(tmp_path):
    save_arrays(tmp_path / "a.arrays", ARRAYS, {"seq": "7"})
    arrays, metadata = mapped_arrays(tmp_path / "a.arrays")
    assert metadata == {"seq": "7"} and set(arrays) == set(ARRAYS)
    for name, want in ARRAYS.items():
        assert arrays[name].dtype == want.dtype and np.array_equal(arrays[name], want)
        assert arrays[name].flags.aligned and not arrays[name].flags.writeable
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file became the file
    (tmp_path / "plain").write_bytes(b"")  # the mode of the data dir's other files
    assert (tmp_path / "a.arrays").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_a_file_replaced_under_a_live_mapping_leaves_that_mapping_as_it_was(tmp_path):
    path = tmp_path / "a.arrays"
    save_arrays(path, ARRAYS, {"seq": "1"})
    before = file_stamp(path)
    old, _ = mapped_arrays(path)
    save_arrays(path, {"weights": np.full(7, 9, dtype=np.float32)}, {"seq": "2"})
    new, metadata = mapped_arrays(path)
    assert np.array_equal(old["weights"], ARRAYS["weights"]) and new["weights"].tolist() == [9.0] * 7
    assert metadata["seq"] == "2" and file_stamp(path) != before


@pytest.mark.parametrize("content", [b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", b"no header here"])
def test_a_file_that_is_not_an_array_file_is_refused(tmp_path, content):
    (tmp_path / "a.arrays").write_bytes(content)
    with pytest.raises(ValueError):
        mapped_arrays(tmp_path / "a.arrays")


def test_a_truncated_file_is_refused_and_a_missing_one_is_not_found(tmp_path):
    save_arrays(tmp_path / "a.arrays", ARRAYS, {})
    data = (tmp_path / "a.arrays").read_bytes()
    (tmp_path / "a.arrays").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="past the end"):
        mapped_arrays(tmp_path / "a.arrays")
    with pytest.raises(FileNotFoundError):
        mapped_arrays(tmp_path / "none.arrays")
    assert file_stamp(tmp_path / "none.arrays") is None


def test_arrays_written_in_place_read_back_as_saved_ones_do_and_as_safetensors_reads_them(tmp_path):
    from safetensors.numpy import load_file

    shapes = {name: (a.dtype.type, a.shape) for name, a in ARRAYS.items()}
    with writing_arrays(tmp_path / "a.arrays", shapes, {"seq": "3"}) as (fd, layout):
        for name, want in ARRAYS.items():
            os.pwrite(fd, want.tobytes(), layout[name].offset)
    arrays, metadata = mapped_arrays(tmp_path / "a.arrays")
    assert metadata == {"seq": "3"} and not list(tmp_path.glob("*.tmp"))
    for name, want in ARRAYS.items():
        assert arrays[name].dtype == want.dtype and np.array_equal(arrays[name], want) and arrays[name].flags.aligned
    assert all(np.array_equal(a, ARRAYS[name]) for name, a in load_file(tmp_path / "a.arrays").items())


def test_arrays_not_written_are_zeros(tmp_path):
    with writing_arrays(tmp_path / "a.arrays", {"rows": (np.int32, (5,))}, {}):
        pass
    assert mapped_arrays(tmp_path / "a.arrays")[0]["rows"].tolist() == [0] * 5


def test_a_failure_while_arrays_are_written_leaves_the_file_before_and_no_temporary_one(tmp_path):
    path = tmp_path / "a.arrays"
    save_arrays(path, ARRAYS, {"seq": "1"})
    with pytest.raises(RuntimeError), writing_arrays(path, {"rows": (np.int32, (5,))}, {"seq": "2"}) as (fd, layout):
        os.pwrite(fd, np.full(5, 7, dtype=np.int32).tobytes(), layout["rows"].offset)
        raise RuntimeError("the store went away")
    arrays, metadata = mapped_arrays(path)
    assert metadata == {"seq": "1"} and np.array_equal(arrays["rows"], ARRAYS["rows"])
    assert not list(tmp_path.glob("*.tmp"))
