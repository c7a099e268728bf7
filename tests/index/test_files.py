"""Files replaced whole: the new version or the old one, never half of either, and no leftover when a write fails."""

import pytest

from index.files import read_through, replacing


def test_a_finished_write_replaces_the_file_and_a_failed_one_leaves_it_and_no_temporary(tmp_path):
    path = tmp_path / "index.faiss"
    with replacing(path) as tmp:
        tmp.write_bytes(b"first")
    with pytest.raises(OSError, match="disk full"), replacing(path) as tmp:
        tmp.write_bytes(b"half of the sec")
        raise OSError("disk full")
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]


def test_read_through_reads_a_file_to_its_end_and_a_missing_file_is_nothing(tmp_path):
    path = tmp_path / "index.faiss"
    path.write_bytes(b"x" * (3 * 1024 + 7))
    assert list(read_through(path, chunk=1024)) == [1024, 1024, 1024, 7]  # a step a chunk, a short last one
    assert list(read_through(tmp_path / "lexical.weights")) == []
