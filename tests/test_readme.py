"""The docs document what the code offers: every setting (as its environment variable) and every route appear in
the README or a page of docs/ (read as one text), and every relative link of those pages leads somewhere."""

import re
import unicodedata
from pathlib import Path

from recommender.settings import Settings
from service.app import create_app
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DOCS = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)

# A Markdown link or image outside code: [text](target) or ![alt](target), the target up to a space or `)`.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def test_every_setting_is_documented():
    variables = [f"RECOMMENDER_{name.upper()}" for name in Settings.model_fields]
    assert [v for v in variables if not re.search(rf"\b{v}\b", DOCS)] == []


def test_every_route_is_documented(tmp_path):
    spec = create_app(make_settings(tmp_path)).openapi()  # the app's own routes; no engine is opened
    routes = [f"{method.upper()} {path}" for path, operations in spec["paths"].items() for method in operations]
    assert len(routes) >= 12
    # Written in code as `METHOD /path`, optionally followed by its query string: `GET /a?limit=8`.
    assert [r for r in routes if not re.search(rf"`{re.escape(r)}[`?\s]", DOCS)] == []
    assert "/docs" in DOCS


def test_the_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "serve"], ["make", "test"]]
    assert len(readme.splitlines()) <= 300  # read in ten minutes; the rest lives in docs/


def test_every_relative_link_resolves():
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in PAGES
        for target in links(page)
        if not resolves(page, target)
    ]
    assert broken == []


def test_the_docs_site_lists_every_page():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in PAGES if p.parent != ROOT]
    assert [p for p in pages if not re.search(rf":\s*{re.escape(p)}\s*$", config, re.M)] == []


def links(page: Path) -> list[str]:
    text = CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # not http:, mailto:...


def resolves(page: Path, target: str) -> bool:
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.is_file():
        return False
    return not anchor or file.suffix != ".md" or anchor in anchors(file)


def anchors(page: Path) -> set[str]:
    """The ids of a page's headings, as MkDocs (Python-Markdown's toc) and GitHub both make them for plain titles."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(title) for title in re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)}


def slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_title).strip().lower())
