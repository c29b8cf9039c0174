"""The course's data files: found offline, checked by sha256, downloaded once when
missing, and the same loader in every notebook that carries a copy."""
import hashlib
import inspect

import nbformat
import pytest

import coursedata
from conftest import ROOT

BEGIN, END = "# --- coursedata.py ---", "# --- end of coursedata.py ---"


def test_files_are_found_beside_the_checkout_and_checked(monkeypatch, tmp_path):
    shared = ROOT.parent / "shared" / "data"
    if not (shared / "names.txt").exists():
        pytest.skip("no ../shared/data beside this checkout")
    monkeypatch.delenv("COURSE_DATA", raising=False)
    monkeypatch.chdir(ROOT / "assignments")  # as a notebook in assignments/aNN would look upward
    names = coursedata.load_text("names.txt")
    assert names.startswith("emma\n") and len(names.split()) == 32033
    bad = tmp_path / "names.txt"
    bad.write_text("emma\n")
    with pytest.raises(ValueError, match="sha256 differs"):
        coursedata.load_text("names.txt", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown data file"):
        coursedata.load_text("wikipedia.txt")


def test_a_missing_file_is_downloaded_once_into_the_cache(monkeypatch, tmp_path):
    shared = ROOT.parent / "shared" / "data" / "names.txt"
    if not shared.exists():
        pytest.skip("no ../shared/data beside this checkout")
    digest = hashlib.sha256(shared.read_bytes()).hexdigest()
    monkeypatch.setitem(coursedata.SOURCES, "names.txt", (shared.as_uri(), digest))  # a file:// "download"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert coursedata.load_text("names.txt") == shared.read_text()
    assert (tmp_path / "cache" / "transformers-course" / "names.txt").read_bytes() == shared.read_bytes()
    monkeypatch.setitem(coursedata.SOURCES, "tinyshakespeare.txt", ((tmp_path / "gone.txt").as_uri(), digest))
    with pytest.raises(FileNotFoundError, match="set COURSE_DATA"):
        coursedata.load_text("tinyshakespeare.txt")


def test_notebook_copies_are_the_module():
    """Notebooks cannot import the course package in Colab: they carry a copy, kept equal."""
    source = inspect.getsource(coursedata)
    canonical = source[source.index("SOURCES = {"):].strip()
    for path in sorted(ROOT.glob("solutions/*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if BEGIN in cell.source:
                copy = cell.source.split(BEGIN, 1)[1].split(END, 1)[0].strip()
                assert copy == canonical, f"{path.relative_to(ROOT)}: its copy of coursedata.py differs; paste it again"
