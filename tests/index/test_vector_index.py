"""The FAISS wrapper on its own: every kind adds, replaces, removes, searches, saves atomically and loads back."""

import json

import numpy as np
import pytest

from index import KINDS, VectorIndex, index_kind_for, load_index
from index.vector_index import FLAT_MAX, HNSWSQ_MAX, MIN_TRAIN

DIM = 48


def unit(rng, n, dim=DIM):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled(kind, n=None):
    rng = np.random.default_rng(0)
    n = n or max(MIN_TRAIN.get(kind, 0), 500)
    vectors = unit(rng, n)
    index = VectorIndex(DIM, kind, "m")
    index.add(np.arange(100, 100 + n), vectors)
    return index, vectors


@pytest.mark.parametrize("kind", KINDS)
def test_add_search_replace_remove(kind):
    index, vectors = filled(kind)
    n = len(vectors)
    assert len(index) == n
    _, keys = index.search(vectors[7], 5)
    assert keys[0][0] == 107
    # Replacing a vector: the key is found at its new place, never at the old one.
    new = -vectors[7]
    index.add(np.array([107]), new[None, :])
    assert len(index) == n
    _, keys = index.search(vectors[7], 10)
    assert 107 not in keys[0]
    _, keys = index.search(new, 1)
    assert keys[0][0] == 107
    index.remove(np.array([108, 109]))
    assert len(index) == n - 2
    _, keys = index.search(vectors[8], 20)
    assert 108 not in keys[0] and keys[0][0] != -1
    assert set(index.ids().tolist()) == set(range(100, 100 + n)) - {108, 109}
    index.remove(np.array([999_999]))  # unknown keys are ignored
    assert len(index) == n - 2


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_leaves_no_temp_file(tmp_path, kind):
    index, vectors = filled(kind)
    index.remove(np.array([110]))
    index.add(np.array([111]), -vectors[111 - 100][None, :])
    path = tmp_path / "index.faiss"
    meta = index.save(path, seq=42)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss", "index.faiss.json"]
    assert (meta.kind, meta.seq, meta.count, meta.model) == (kind, 42, len(vectors) - 1, "m")
    loaded, meta2 = load_index(path)
    assert meta2 == meta and loaded.kind == kind and len(loaded) == len(index)
    for q in (vectors[3], vectors[10], -vectors[11]):
        np.testing.assert_array_equal(loaded.search(q, 5)[1], index.search(q, 5)[1])
    assert 110 not in loaded.ids()
    _, keys = loaded.search(vectors[11], 10)
    assert 111 not in keys[0]  # a replaced HNSW vector stays hidden after a reload


@pytest.mark.parametrize("kind", ["flat", "hnswsq"])
def test_a_mapped_index_searches_the_file_and_keeps_its_own_changes_beside_it(tmp_path, kind):
    index, vectors = filled(kind)
    index.save(tmp_path / "i.faiss", seq=1)
    mapped, _ = load_index(tmp_path / "i.faiss", mmap=True)
    assert mapped.mapped and len(mapped) == len(vectors)
    np.testing.assert_array_equal(mapped.search(vectors[:3], 4)[1], index.search(vectors[:3], 4)[1])
    # A replaced vector is found at its new place only, a removed one nowhere, a new one at once.
    mapped.add(np.array([107, 5]), np.stack([-vectors[7], -vectors[9]]))
    mapped.remove(np.array([108]))
    assert mapped.search(-vectors[7], 1)[1][0][0] == 107 and 107 not in mapped.search(vectors[7], 10)[1][0]
    assert mapped.search(-vectors[9], 1)[1][0][0] == 5
    assert 108 not in mapped.search(vectors[8], 10)[1][0]
    assert len(mapped) == len(vectors) and set(mapped.ids().tolist()) == set(range(100, 100 + len(vectors))) - {108} | {5}
    mapped.remove(np.array([5]))
    assert 5 not in mapped.search(-vectors[9], 10)[1][0] and len(mapped) == len(vectors) - 1
    with pytest.raises(PermissionError):
        mapped.save(tmp_path / "i.faiss", seq=2)  # the file belongs to the process that holds the index whole


def test_ivfpq_is_read_not_mapped(tmp_path):
    index, _ = filled("ivfpq")
    index.save(tmp_path / "i.faiss", seq=1)
    assert not load_index(tmp_path / "i.faiss", mmap=True)[0].mapped


def test_corrupt_or_mismatched_files_are_refused(tmp_path):
    index, _ = filled("flat", 50)
    path = tmp_path / "i.faiss"
    index.save(path, seq=1)
    meta = json.loads((tmp_path / "i.faiss.json").read_text())
    (tmp_path / "i.faiss.json").write_text(json.dumps(dict(meta, dim=DIM * 2)))
    with pytest.raises(ValueError):
        load_index(path)
    (tmp_path / "i.faiss.json").write_text(json.dumps(meta))
    path.write_bytes(b"not an index")
    with pytest.raises(ValueError):
        load_index(path)


def test_a_chosen_kind_is_recorded_with_the_index_and_older_files_read_as_not_chosen(tmp_path):
    index, _ = filled("flat", 50)
    index.save(tmp_path / "picked.faiss", seq=3)
    index.chosen = True  # `recommender reindex --kind flat`
    index.save(tmp_path / "chosen.faiss", seq=3)
    assert load_index(tmp_path / "chosen.faiss")[1].chosen and load_index(tmp_path / "chosen.faiss")[0].chosen
    assert not load_index(tmp_path / "picked.faiss")[0].chosen
    meta = json.loads((tmp_path / "picked.faiss.json").read_text())
    del meta["chosen"]  # as written before the choice was recorded
    (tmp_path / "picked.faiss.json").write_text(json.dumps(meta))
    assert not load_index(tmp_path / "picked.faiss")[1].chosen
    # A trained kind with nothing in it yet is saved as an empty flat index: not a kind anyone chose.
    VectorIndex(8, "hnswsq", "m", chosen=True).save(tmp_path / "empty.faiss", seq=0)
    assert load_index(tmp_path / "empty.faiss")[1].kind == "flat"
    assert not load_index(tmp_path / "empty.faiss")[1].chosen


def test_a_meta_field_written_by_a_newer_version_is_ignored_not_a_reason_to_rebuild(tmp_path):
    index, _ = filled("flat", 50)
    index.save(tmp_path / "newer.faiss", seq=3)
    meta = json.loads((tmp_path / "newer.faiss.json").read_text())
    (tmp_path / "newer.faiss.json").write_text(json.dumps(meta | {"written_by": "a later release"}))
    assert len(load_index(tmp_path / "newer.faiss")[0]) == 50
    (tmp_path / "newer.faiss.json").write_text("[]")
    with pytest.raises(ValueError, match="is unreadable"):
        load_index(tmp_path / "newer.faiss")


def test_an_index_derived_from_another_store_is_refused_and_one_that_records_none_is_read(tmp_path):
    index, _ = filled("flat", 50)
    index.save(tmp_path / "ours.faiss", seq=3, store="ours")
    index.save(tmp_path / "older.faiss", seq=3)  # as written before files recorded their store
    assert load_index(tmp_path / "ours.faiss", store="ours")[1].store == "ours"
    assert len(load_index(tmp_path / "older.faiss", store="ours")[0]) == 50
    with pytest.raises(ValueError, match=r"derived from another store \(ours\), not this one \(theirs\)"):
        load_index(tmp_path / "ours.faiss", store="theirs")


@pytest.mark.parametrize("kind", sorted(MIN_TRAIN))
def test_trained_kinds_refuse_a_first_batch_too_small_to_train(kind):
    with pytest.raises(ValueError, match=f"at least {MIN_TRAIN[kind]}"):
        VectorIndex(DIM, kind).add(np.arange(10), unit(np.random.default_rng(1), 10))


def test_hnswsq_candidates_hold_the_exact_top_10_once_rescored():
    """Quantised scores are approximate; re-scoring the top 100 exactly (as the engine does) gives the true top 10."""
    rng = np.random.default_rng(3)
    vectors, queries = unit(rng, 5000), unit(rng, 50)
    index = VectorIndex(DIM, "hnswsq")
    index.add(np.arange(5000), vectors)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    _, found = index.search(queries, 100)
    rescored = [cand[np.argsort(-(vectors[cand] @ q))[:10]] for cand, q in zip(found, queries, strict=True)]
    recall = np.mean([len(set(r) & set(t)) / 10 for r, t in zip(rescored, truth, strict=True)])
    assert recall >= 0.95


def test_index_kind_rule():
    assert index_kind_for(0) == index_kind_for(FLAT_MAX) == "flat"
    assert index_kind_for(FLAT_MAX + 1) == index_kind_for(1_000_000) == index_kind_for(HNSWSQ_MAX) == "hnswsq"
    assert index_kind_for(HNSWSQ_MAX + 1) == "ivfpq"
    with pytest.raises(ValueError):
        VectorIndex(DIM, "lsh")


@pytest.mark.parametrize("other", ["hnsw", "flat"])
def test_a_file_paired_with_another_saves_meta_is_refused_so_it_is_rebuilt(tmp_path, other):
    """A crash between the file's rename and its meta's leaves a new file beside an old meta."""
    old, new = tmp_path / "old.faiss", tmp_path / "new.faiss"
    filled("flat", 20)[0].save(old, seq=1)
    filled(other, 30)[0].save(new, seq=2)  # another kind, or the same kind holding other slots
    new.replace(old)
    with pytest.raises(ValueError, match="does not match its meta"):
        load_index(old)
