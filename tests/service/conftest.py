"""The app two ways, each over a private copy of the ingested MIND slice: in-process (``TestClient`` of
``create_app``, for most API tests) and a real uvicorn server on a free loopback port (end to end, crashes,
slow clients, fuzz)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

from recommender.engine import Recommender
from recommender.loaders import raw_rows
from service.app import create_app
from tests.conftest import MIND_SAMPLE, SLICE, make_settings

TOKEN = "test-token-0123456789"
# How long a test's client waits for an answer: long enough for the slowest thing a server may do first on two
# busy cores (start its writer, load the model, embed a 64-article batch, rank a first list on demand), so that a
# test waits for the server's answer, never for its speed. A test that must end by a time bounds its own wait.
CLIENT_TIMEOUT_S = 300.0
CLIENT_TIMEOUT = httpx.Timeout(CLIENT_TIMEOUT_S, connect=30.0)
# How long a server (or a cache) may take to become ready: an overall bound on waiting for readiness.
READY_TIMEOUT_S = 300.0
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``recommender serve`` as a child process; ``kill()`` is a SIGKILL, ``stop()`` a clean shutdown."""

    def __init__(self, data_dir: Path, **env: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RECOMMENDER_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false", "RECOMMENDER_WORKERS": "1", **env}
        self.log = data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = READY_TIMEOUT_S) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recommender.cli", "serve", "--port", str(self.port)],
            env=self.env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=10).status_code == 200:  # ready, not fast
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=CLIENT_TIMEOUT)


def private_copy(ingested_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("served") / "data"
    shutil.copytree(ingested_dir, data)
    return data


@pytest.fixture(scope="module")
def fresh_rows() -> list[dict]:
    """MIND articles that are not in the ingested slice, as JSON-ready dicts."""
    rows = list(raw_rows(MIND_SAMPLE))[SLICE:SLICE + 200]
    return [{k: v for k, v in r.items() if k in ("id", "title", "lead", "url", "section", "tags", "language")}
            for r in rows]


@pytest.fixture(scope="module")
def server(ingested_dir, tmp_path_factory) -> Iterator[Server]:
    srv = Server(private_copy(ingested_dir, tmp_path_factory), RECOMMENDER_API_TOKEN=TOKEN).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def app(ingested_dir, tmp_path_factory, embedder) -> Iterator[FastAPI]:
    """The app in-process, over its own engine (one per test module), with a writer's token set."""
    settings = make_settings(private_copy(ingested_dir, tmp_path_factory), api_token=TOKEN)
    with Recommender(settings, embedder=embedder) as engine:
        yield create_app(settings, recommender=engine)


@pytest.fixture(scope="module")
def api(app) -> Iterator[TestClient]:
    """A writer's client of the in-process app (its lifespan runs once for the module)."""
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


@pytest.fixture
def anon(app, api) -> TestClient:
    """A client without the token, of the same running app."""
    return TestClient(app)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium driven by Debian's chromedriver; nothing is downloaded (no selenium-manager)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are missing: `make test` installs them (Debian's chromium "
                    "and chromium-driver)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1280,1024",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
