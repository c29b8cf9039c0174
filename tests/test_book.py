"""The built book: every chapter meets the chapter standard's checkable parts, no
leaks, offline assets, links from one place, pages within their execution budget.

Checks are per chapter folder listed in _toc.yml, so a new chapter is covered by
listing it; `test_browser.py` renders the same pages in Chromium.
"""
import importlib.util
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from bs4 import BeautifulSoup

from autograder.leaks import find_leaks, instructor_blocks, suite_lines
from autograder.paths import known_assignments
from conftest import ROOT, chapters, toc_files

# One process builds the book for these tests and test_browser.py (make test runs two).
pytestmark = pytest.mark.xdist_group("book")
CHAPTERS = chapters()
PAGE_SECONDS = 20  # the budget for executing one page (README, "Budget")


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(), "html.parser")


def html_of(built_book: Path, page: str) -> Path:
    return built_book / f"{page}.html"


def course_ext():
    spec = importlib.util.spec_from_file_location("course_ext", ROOT / "book" / "_ext" / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- sources (fast) ----------------------------------------------------------------------------

def test_toc_lists_only_written_pages():
    for f in toc_files():
        src = next(ROOT.glob(f + ".*"), None)
        assert src is not None, f"_toc.yml lists {f} but no such page exists"
        text = src.read_text()
        assert "TODO" not in text and "Placeholder" not in text, f"{src} is a placeholder page"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_has_3_to_6_pages(chapter):
    assert 3 <= len(CHAPTERS[chapter]) <= 6, f"{chapter} has {len(CHAPTERS[chapter])} pages"
    assert CHAPTERS[chapter][0] == f"{chapter}/index", "a chapter opens with its overview page, index"


def test_no_page_writes_course_urls_by_hand():
    """Launch and download links come from the {assignment} directive, which reads
    _config.yml: no page repeats the repository, the hub or a launch service."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    fixed = [config["repository"]["url"].removeprefix("https://"), "colab.research.google.com", "mybinder.org",
             config["launch_buttons"]["jupyterhub_url"].removeprefix("https://")]
    assert "colab_url" not in config["launch_buttons"], "Colab cannot open the chapter pages (.md)"
    assert config["sphinx"]["config"]["course_launch"]["jupyterhub_url"] == config["launch_buttons"]["jupyterhub_url"]
    for page in ROOT.glob("book/**/*.md"):
        text = page.read_text()
        for url in fixed:
            assert url not in text, f"{page.relative_to(ROOT)} writes {url} by hand: use {{assignment}} aNN"
        assert not re.search(r"assignments/a\d\d/", text), f"{page.relative_to(ROOT)} links a notebook by hand"


def test_launch_links_follow_the_configuration():
    """Another repository, branch or hub in _config.yml gives other links: nothing is fixed."""
    ext = course_ext()
    launch = {"colab_url": "https://colab.example.org", "binderhub_url": "https://binder.example.org",
              "jupyterhub_url": "https://hub.example.org/", "notebook_interface": "jupyterlab"}
    links = dict(ext.launch_links("https://github.com/someone/fork", "spring", launch,
                                  "assignments/a07/a07.ipynb"))
    assert links["Colab"] == "https://colab.example.org/github/someone/fork/blob/spring/assignments/a07/a07.ipynb"
    assert links["Binder"] == "https://binder.example.org/v2/gh/someone/fork/spring?labpath=assignments%2Fa07%2Fa07.ipynb"
    query = parse_qs(urlparse(links["JupyterHub"]).query)
    assert links["JupyterHub"].startswith("https://hub.example.org/hub/user-redirect/git-pull?")
    assert query == {"repo": ["https://github.com/someone/fork"], "branch": ["spring"],
                     "urlpath": ["lab/tree/fork/assignments/a07/a07.ipynb"]}
    assert ext.launch_links("https://github.com/a/b", "main", {}, "x.ipynb") == [], "no service, no link"


# --- the built book (slow) -----------------------------------------------------------------------

@pytest.mark.slow
def test_book_never_reads_graded_material(built_book):
    for folder in ("solutions", "assignments", "autograder", "tests"):
        assert not (built_book / folder).exists(), f"the book build rendered {folder}/"


@pytest.mark.slow
def test_no_solution_code_or_hidden_tests_in_html(built_book):
    names = known_assignments(ROOT)
    blocks = [b for name in names for b in instructor_blocks(name, ROOT)]
    suite = [line for name in names for line in suite_lines(name, ROOT)]
    for page in built_book.rglob("*.html"):
        page_soup = soup(page)
        code = "\n".join(pre.get_text() for pre in page_soup.find_all("pre"))
        leaks = find_leaks(blocks, code + "\n" + page_soup.get_text("\n"), suite)
        assert leaks == [], f"{page} leaks instructor material: {leaks[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_meets_the_standard(built_book, chapter):
    pages = {p: soup(html_of(built_book, p)) for p in CHAPTERS[chapter]}
    text = {p: s.get_text(" ") for p, s in pages.items()}
    overview, summary = text[f"{chapter}/index"], text[CHAPTERS[chapter][-1]]
    assert "Learning objectives" in overview and "Prerequisites" in overview, "the overview page"
    for section in ("Common pitfalls", "Summary", "Exercises", "References"):
        assert section in summary, f"the chapter's last page lacks a '{section}' section"
    assert pages[CHAPTERS[chapter][-1]].select("div.citation, dl.citation, .bibliography"), "references are missing"
    # Figures made by code: images that myst-nb wrote from cell outputs.
    figures = [img for s in pages.values() for img in s.select("div.cell_output img, figure img")]
    assert len(figures) >= 3, f"{chapter} should have at least 3 figures made by code, found {len(figures)}"
    for page, s in pages.items():
        for img in s.select("div.cell_output img, figure img"):
            assert (html_of(built_book, page).parent / img["src"]).resolve().exists(), img["src"]
    words = sum(len(re.findall(r"[A-Za-z]+", t)) for t in text.values())
    assert words > 4000, f"{chapter} has only {words} words"
    # An interactive element: live in a kernel, static in the HTML (no widget JavaScript).
    raw = {p: html_of(built_book, p).read_text() for p in pages}
    assert any("ipywidgets" in h for h in raw.values()), f"{chapter} has no interactive element (ipywidgets)"
    for page, html in raw.items():
        assert "application/vnd.jupyter.widget" not in html and "@jupyter-widgets" not in html, (
            f"{page}: widget output needs CDN JavaScript; render it statically during the build")


@pytest.mark.slow
@pytest.mark.parametrize("name", known_assignments(ROOT))
def test_assignment_links_download_the_release_and_launch_the_repository(built_book, name):
    chapter = next(c for c in CHAPTERS if c.startswith(f"book/ch{name[1:]}-"))
    index = soup(html_of(built_book, f"{chapter}/index"))
    box = index.select_one("ul.assignment-links")
    assert box is not None, f"{chapter}/index has no {{assignment}} {name} links"
    link = next(a for a in box.find_all("a") if "_downloads" in a.get("href", ""))
    downloaded = (html_of(built_book, f"{chapter}/index").parent / link["href"]).resolve()
    release = next((ROOT / "assignments" / name).glob("*.ipynb"))
    assert downloaded.read_bytes() == release.read_bytes(), "the download is not the current release"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo, branch = config["repository"]["url"], config["repository"]["branch"]
    launch = {a.get_text(): a["href"] for a in box.find_all("a") if a.get("href", "").startswith("http")}
    assert set(launch) == {"Colab", "Binder", "JupyterHub"}, launch
    notebook = f"assignments/{name}/{release.name}"
    assert launch["Colab"].endswith(f"{repo.removeprefix('https://github.com/')}/blob/{branch}/{notebook}")
    services = config["sphinx"]["config"]["course_launch"]
    assert launch["Colab"].startswith(services["colab_url"])
    assert launch["Binder"].startswith(services["binderhub_url"])
    hub = urlparse(launch["JupyterHub"])
    assert launch["JupyterHub"].startswith(services["jupyterhub_url"])
    assert parse_qs(hub.query) == {"repo": [repo], "branch": [branch],
                                   "urlpath": [f"lab/tree/{repo.rpartition('/')[2]}/{notebook}"]}, hub.query


@pytest.mark.slow
def test_course_map_links_exactly_the_published_chapters(built_book):
    intro = soup(built_book / "book" / "intro.html")
    table = intro.select_one("table.course-map")
    assert table is not None and len(table.select("tbody tr")) == 15, "the course map lists 15 chapters"
    linked = sorted(a["href"] for a in table.find_all("a"))
    assert linked == sorted(f"{c.removeprefix('book/')}/index.html" for c in CHAPTERS), linked
    for chapter in CHAPTERS:  # under the title its own page has
        title = soup(html_of(built_book, f"{chapter}/index")).find("h1").get_text().rstrip("#¶ ")
        assert title in table.get_text(" "), title


@pytest.mark.slow
def test_pages_load_scripts_from_the_book_itself(built_book):
    assert (built_book / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    for page in toc_files():
        scripts = [s.get("src", "") for s in soup(html_of(built_book, page)).find_all("script")]
        assert not [s for s in scripts if s.startswith("http")], f"{page} loads scripts from the internet: {scripts}"


@pytest.mark.slow
def test_every_page_executes_within_its_budget(built_book):
    times = json.loads((built_book.parent / "exec-times.json").read_text())
    executed = [p for p in toc_files() if p in times]
    assert executed, "no execution times recorded (book/_ext/course.py writes them)"
    slow = {p: t["seconds"] for p, t in times.items() if t["seconds"] > PAGE_SECONDS}
    assert not slow, f"pages over the {PAGE_SECONDS} s budget: {slow}; move heavy work to bench/ and quote it"
