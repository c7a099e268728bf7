"""The README documents what the code offers: every setting (as its environment variable) and every route."""

import re
from pathlib import Path

from recommender.settings import Settings
from service.app import create_app
from tests.conftest import make_settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme():
    variables = [f"RECOMMENDER_{name.upper()}" for name in Settings.model_fields]
    assert [v for v in variables if not re.search(rf"\b{v}\b", README)] == []


def test_every_route_is_in_the_readme(tmp_path):
    spec = create_app(make_settings(tmp_path)).openapi()  # the app's own routes; no engine is opened
    routes = [f"{method.upper()} {path}" for path, operations in spec["paths"].items() for method in operations]
    assert len(routes) >= 12
    # Written in code as `METHOD /path`, optionally followed by its query string: `GET /a?limit=8`.
    assert [r for r in routes if not re.search(rf"`{re.escape(r)}[`?\s]", README)] == []
    assert "/docs" in README
