"""The built book: complete chapters, no leaks, offline assets, working links."""
import re
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from autograder.leaks import find_leaks, solution_blocks
from conftest import ROOT

pytestmark = pytest.mark.slow
CH03 = ["index", "soft-lookup", "scaled-dot-product", "masks-and-self-attention", "summary"]


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(), "html.parser")


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries:
            files.append(e["file"])
            walk(e.get("sections", []))
    for part in toc["parts"]:
        walk(part["chapters"])
    return files


def test_toc_lists_only_written_pages():
    for f in toc_files():
        src = next(ROOT.glob(f + ".*"), None)
        assert src is not None, f"_toc.yml lists {f} but no such page exists"
        text = src.read_text()
        assert "TODO" not in text and "Placeholder" not in text, f"{src} is a placeholder page"


def test_book_never_reads_graded_material(built_book):
    for folder in ("solutions", "assignments", "autograder", "tests"):
        assert not (built_book / folder).exists(), f"the book build rendered {folder}/"


def test_no_solution_code_or_hidden_tests_in_html(built_book):
    blocks = [b for nb in (ROOT / "solutions").glob("*/*.ipynb") for b in solution_blocks(nb)]
    for page in built_book.rglob("*.html"):
        page_soup = soup(page)
        code = "\n".join(pre.get_text() for pre in page_soup.find_all("pre"))
        assert find_leaks(blocks, code + "\n" + page_soup.get_text("\n")) == [], f"{page} leaks solution code"


def test_chapter3_is_complete(built_book):
    pages = {name: soup(built_book / "book" / "ch03-attention" / f"{name}.html") for name in CH03}
    text = {name: s.get_text(" ") for name, s in pages.items()}
    assert "Learning objectives" in text["index"]
    for section in ("Common pitfalls", "Summary", "Exercises", "References"):
        assert section in text["summary"], f"the chapter summary lacks a '{section}' section"
    # Figures made by code: images that myst-nb wrote from cell outputs.
    figures = [img for s in pages.values() for img in s.select("div.cell_output img, figure img")]
    assert len(figures) >= 3, f"chapter 3 should have at least 3 figures made by code, found {len(figures)}"
    for img in figures:
        assert (built_book / "book" / "ch03-attention" / img["src"]).resolve().exists(), img["src"]
    words = sum(len(re.findall(r"[A-Za-z]+", t)) for t in text.values())
    assert words > 4000, f"chapter 3 has only {words} words"
    # The bibliography is rendered and cited.
    assert pages["summary"].select("div.citation, dl.citation, .bibliography"), "references are missing"


def test_assignment_link_downloads_the_current_release(built_book):
    index = soup(built_book / "book" / "ch03-attention" / "index.html")
    link = next(a for a in index.find_all("a") if a.get("href", "").endswith("a03.ipynb") and "_downloads" in a["href"])
    downloaded = (built_book / "book" / "ch03-attention" / link["href"]).resolve()
    assert downloaded.read_bytes() == (ROOT / "assignments" / "a03" / "a03.ipynb").read_bytes()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    launch = [a["href"] for a in index.find_all("a") if "colab" in a.get("href", "") or "mybinder" in a.get("href", "")]
    assert launch and all(repo in href or repo.replace("/", "%2F") in href for href in launch), launch


def test_explorer_is_static_in_html(built_book):
    page = (built_book / "book" / "ch03-attention" / "scaled-dot-product.html").read_text()
    assert "ipywidgets" in page, "the explorer's code should be on the page"
    assert "application/vnd.jupyter.widget" not in page and "@jupyter-widgets" not in page, (
        "widget output needs CDN JavaScript: render the explorer statically during the build")


def test_pages_load_mathjax_from_the_book_itself(built_book):
    assert (built_book / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    for name in CH03:
        scripts = [s.get("src", "") for s in soup(built_book / "book" / "ch03-attention" / f"{name}.html").find_all("script")]
        assert not [s for s in scripts if s.startswith("http")], f"{name}.html loads scripts from the internet: {scripts}"
