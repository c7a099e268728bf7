"""A throwaway Varnish for the tests: Debian's ``varnishd`` (``make test`` installs ``varnish`` and
``varnish-modules``, for the xkey vmod) in the foreground, with its working directory in a temporary directory,
listening on a free loopback port, in front of one backend, running ``docs/cdn/varnish.vcl`` (the VCL docs/cdn.md
shows).

As root, varnishd would drop its privileges to the ``varnish`` user and jail itself (``-j unix``), which cannot
write a working directory that root made elsewhere: ``-j none`` keeps it as the user that started it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from recommender.processes import terminate
from tests.pgcluster import free_port

VCL = Path(__file__).resolve().parents[1] / "docs" / "cdn" / "varnish.vcl"
VARNISHD = "/usr/sbin/varnishd"


class Varnish:
    """``with Varnish(backend_port, port) as cache:`` a varnishd on ``port`` (a free one by default) in front of
    127.0.0.1:``backend_port``; ``cache.url``."""

    def __init__(self, backend_port: int, port: int | None = None):
        if not os.path.exists(VARNISHD) or not any(Path("/usr/lib").glob("*/varnish/vmods/libvmod_xkey.so")):
            raise FileNotFoundError("varnishd or its xkey vmod is missing: run `make test` (it installs Debian's "
                                    "varnish and varnish-modules) or `apt-get install varnish varnish-modules`")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="recommender-varnish-"))
        vcl = re.sub(r'\.port = "\d+";', f'.port = "{backend_port}";', VCL.read_text(), count=1)
        (self.root / "test.vcl").write_text(vcl)
        self.log = self.root / "varnishd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> Varnish:
        self.proc = subprocess.Popen(
            [VARNISHD, "-F", "-j", "none", "-n", str(self.root / "work"), "-a", f"127.0.0.1:{self.port}",
             "-T", "127.0.0.1:0", "-f", str(self.root / "test.vcl"), "-s", "malloc,64m"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"varnishd exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:  # varnishd accepts connections: ready (whatever its backend's speed)
                socket.create_connection(("127.0.0.1", self.port), timeout=10).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"varnishd not listening in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Varnish:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
