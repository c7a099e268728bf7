"""A mapped index between processes: its pages are shared, and a checkpoint replaces the file under a live mapping
without a reader ever seeing half of one."""

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from index import VectorIndex, load_index

DIM = 64

# Maps the index, touches every page with a search, says so, waits for a line, then prints the Rss and Pss (kB)
# of its mapping of the index file.
MAPPER = """
import sys
from pathlib import Path
import numpy as np
from index import load_index
path = Path(sys.argv[1])
index, _ = load_index(path, mmap=True)
assert index.mapped
index.search(np.ones((1, index.dim), dtype=np.float32), 10)
print("mapped", flush=True)
sys.stdin.readline()
rss = pss = 0
inside = False
for line in open("/proc/self/smaps"):
    if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
        inside = line.rstrip().endswith(str(path))
    elif inside and line.startswith("Rss:"):
        rss += int(line.split()[1])
    elif inside and line.startswith("Pss:"):
        pss += int(line.split()[1])
print(rss, pss, flush=True)
"""


def saved_flat(path: Path, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(DIM, "flat", "m")
    index.add(np.arange(n), vectors)
    index.save(path, seq=seed)
    return vectors


def mapper(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", MAPPER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parents[2])
    assert proc.stdout is not None and proc.stdout.readline().strip() == "mapped"
    return proc


def rss_and_pss(proc: subprocess.Popen[str]) -> tuple[int, int]:
    out, _ = proc.communicate("\n", timeout=60)
    rss, pss = map(int, out.split())
    return rss, pss


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/PID/smaps")
def test_two_processes_mapping_one_index_share_its_pages(tmp_path):
    path = tmp_path / "index.faiss"
    saved_flat(path, 40_000, seed=1)  # 10 MB of vectors
    first, second = mapper(path), mapper(path)  # both hold it mapped, every page touched
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
