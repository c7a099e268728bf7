"""Processes that map a file and say how much of it they hold: the test of pages shared between processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Appended to a test's own mapping code (which leaves the file mapped and its pages touched): says so, waits for a
# line, then prints the Rss and Pss (kB) of this process's mappings of the file (sys.argv[1]).
REPORT = """
print("mapped", flush=True)
sys.stdin.readline()
rss = pss = 0
inside = False
for line in open("/proc/self/smaps"):
    if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
        inside = line.rstrip().endswith(str(sys.argv[1]))
    elif inside and line.startswith("Rss:"):
        rss += int(line.split()[1])
    elif inside and line.startswith("Pss:"):
        pss += int(line.split()[1])
print(rss, pss, flush=True)
"""


def mapper(code: str, path: Path) -> subprocess.Popen[str]:
    """A Python process running ``code`` (``import sys`` first; the file is ``sys.argv[1]``), holding its mapping
    until ``rss_and_pss`` asks."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys\n" + code + REPORT, str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "mapped"
    return proc


def rss_and_pss(proc: subprocess.Popen[str]) -> tuple[int, int]:
    """The Rss and Pss (kB) of the mapper's mappings of its file; the mapper then exits."""
    out, _ = proc.communicate("\n", timeout=60)
    rss, pss = map(int, out.split())
    return rss, pss
