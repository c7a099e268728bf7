"""How settings shape the app: CORS allow-list, read-only replicas, refusing open writes off loopback."""

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from recommender.settings import Settings
from service.app import create_app
from service.refusals import OpenWritesRefused
from tests.conftest import make_settings


def test_open_writes_on_a_public_host_are_refused(tmp_path):
    with pytest.raises(OpenWritesRefused, match="RECOMMENDER_API_TOKEN"):
        create_app(make_settings(tmp_path, host="0.0.0.0"))


def test_public_host_is_fine_with_a_token_or_read_only(tmp_path):
    create_app(make_settings(tmp_path, host="0.0.0.0", api_token="t"))
    create_app(make_settings(tmp_path, host="0.0.0.0", allow_writes=False))


def test_cors_and_read_only(engine, data_dir):
    settings = make_settings(data_dir, cors_origins=["https://news.example"], allow_writes=False)
    with TestClient(create_app(settings, recommender=engine)) as client:
        ok = client.get("/articles/N34700/similar", headers={"Origin": "https://news.example"})
        assert ok.headers["access-control-allow-origin"] == "https://news.example"
        other = client.get("/articles/N34700/similar", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        r = client.put("/articles/x", json={"title": "t"})
        assert r.status_code == 403 and "read-only" in r.json()["detail"]


@pytest.mark.parametrize("token", ["", " ", "\t\n"])
def test_a_blank_token_is_a_configuration_error(tmp_path, token):
    from pydantic import ValidationError

    from tests.service.conftest import free_port

    with pytest.raises(ValidationError, match="RECOMMENDER_API_TOKEN"):
        make_settings(tmp_path, api_token=token)
    env = {**os.environ, "RECOMMENDER_API_TOKEN": token, "RECOMMENDER_DATA_DIR": str(tmp_path)}
    serve = subprocess.run([sys.executable, "-m", "recommender.cli", "serve", "--host", "0.0.0.0", "--port",
                            str(free_port())], env=env, capture_output=True, text=True, timeout=300)
    assert serve.returncode == 2 and "RECOMMENDER_API_TOKEN" in serve.stderr  # refused to start


def test_cors_origins_are_a_json_list_or_a_comma_separated_list_and_anything_else_stops_serve_in_one_line(
        tmp_path, monkeypatch):
    from tests.service.conftest import free_port

    for value in ('["https://news.example", "http://127.0.0.1:8080"]', "https://news.example, http://127.0.0.1:8080"):
        monkeypatch.setenv("RECOMMENDER_CORS_ORIGINS", value)
        assert Settings().cors_origins == ["https://news.example", "http://127.0.0.1:8080"]
    monkeypatch.setenv("RECOMMENDER_CORS_ORIGINS", "http://news.example")
    assert Settings().cors_origins == ["http://news.example"]
    for bad in ('["https://news.example"', "https://news.example/page", "news.example"):
        env = {**os.environ, "RECOMMENDER_CORS_ORIGINS": bad, "RECOMMENDER_DATA_DIR": str(tmp_path)}
        serve = subprocess.run([sys.executable, "-m", "recommender.cli", "serve", "--port", str(free_port())],
                               env=env, capture_output=True, text=True, timeout=300)
        assert serve.returncode == 2 and serve.stdout == "", serve.stderr
        (line,) = serve.stderr.splitlines()  # one line that says what to write, no traceback
        assert line.startswith("error: RECOMMENDER_CORS_ORIGINS: ") and "https://site.example" in line


@pytest.mark.parametrize(("setting", "says"), [({"RECOMMENDER_HOST": "0.0.0.0"}, "RECOMMENDER_API_TOKEN"),
                                               ({"RECOMMENDER_BOX_TEMPLATE": "/nowhere/box.html"},
                                                "RECOMMENDER_BOX_TEMPLATE")])
def test_serve_refuses_open_writes_and_a_missing_template_before_it_starts_any_process(tmp_path, setting, says):
    from tests.service.conftest import free_port

    env = {**os.environ, **setting, "RECOMMENDER_DATA_DIR": str(tmp_path), "RECOMMENDER_WORKERS": "2"}
    serve = subprocess.run([sys.executable, "-m", "recommender.cli", "serve", "--port", str(free_port())],
                           env=env, capture_output=True, text=True, timeout=300)
    (line,) = serve.stderr.splitlines()  # said by the command itself: no worker or writer logged a start
    assert serve.returncode == 1 and line.startswith("error: ") and says in line
    assert not list(tmp_path.iterdir())  # no writer opened the store, no socket was made


def test_the_serve_command_checks_its_settings_without_importing_the_app_faiss_or_numpy(tmp_path):
    # Its own process only starts the others (the fork server imports the app once for the read workers): every
    # import here was on the path to ready, before anything else started.
    code = ("import sys\nfrom recommender.cli import main\ntry:\n    main(['serve', '--host', '0.0.0.0'])\n"
            "except SystemExit as refused:\n    assert 'RECOMMENDER_API_TOKEN' in str(refused)\n"
            "from index import saved_at\nimport recommender.processes, service.serving, service.writer_socket, uvicorn\n"
            "print(sorted(m for m in ('faiss', 'numpy', 'fastapi', 'service.app') if m in sys.modules))")
    env = {**os.environ, "RECOMMENDER_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"
