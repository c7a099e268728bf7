"""A mapped index between processes: its pages are shared, and a checkpoint replaces the file under a live mapping
without a reader ever seeing half of one."""

import threading
from pathlib import Path

import numpy as np
import pytest

from index import VectorIndex, load_index
from tests.mappings import mapper, rss_and_pss

DIM = 64

# Maps the index and touches every page with a search.
MAPPER = """
from pathlib import Path
import numpy as np
from index import load_index
index, _ = load_index(Path(sys.argv[1]), mmap=True)
assert index.mapped
index.search(np.ones((1, index.dim), dtype=np.float32), 10)
"""


def saved_flat(path: Path, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(DIM, "flat", "m")
    index.add(np.arange(n), vectors)
    index.save(path, seq=seed)
    return vectors


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/PID/smaps")
def test_two_processes_mapping_one_index_share_its_pages(tmp_path):
    path = tmp_path / "index.faiss"
    saved_flat(path, 40_000, seed=1)  # 10 MB of vectors
    first, second = mapper(MAPPER, path), mapper(MAPPER, path)  # both hold it mapped, every page touched
    rss, pss = rss_and_pss(second)
    rss_and_pss(first)
    assert rss > 8_000  # the vectors are in the mapping...
    assert pss < 0.6 * rss  # ...and each process is charged about half of them: one copy in memory for both


def test_a_checkpoint_under_a_live_mapping_never_shows_half_a_file(tmp_path):
    path = tmp_path / "index.faiss"
    old = saved_flat(path, 3_000, seed=1)
    live, _ = load_index(path, mmap=True)
    sizes = {3_000, 5_000}
    seen: list[int] = []
    refused = 0
    errors: list[BaseException] = []

    def checkpoints() -> None:
        for i in range(20):
            saved_flat(path, 5_000 if i % 2 == 0 else 3_000, seed=2 + i % 2)

    def loads() -> None:
        nonlocal refused
        try:
            for _ in range(60):
                try:
                    index, meta = load_index(path, mmap=True)
                except ValueError:  # a new file with the old meta, between the two renames: refused, not misread
                    refused += 1
                    continue
                assert meta.count == len(index)
                seen.append(len(index))
        except BaseException as exc:  # reported below: a thread's assertion would be lost
            errors.append(exc)

    threads = [threading.Thread(target=checkpoints), threading.Thread(target=loads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(seen) + refused == 60 and set(seen) <= sizes  # whole files only (the service's lock avoids refusals)
    # The mapping taken before every checkpoint still reads the file it mapped.
    _, keys = live.search(old[:5], 1)
    assert keys[:, 0].tolist() == [0, 1, 2, 3, 4]
