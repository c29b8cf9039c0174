"""Serve MathJax from the built book instead of a CDN.

Sphinx points pages at MathJax 3 on jsDelivr by default, which fails on machines
with no internet (and in classrooms behind strict proxies). The PyPI package
``django-static-mathjax`` ships MathJax 3.2.2 as plain files (it needs no
Django); this extension copies the browser bundle into ``_static/mathjax`` of
the HTML output and points every page at that copy.
"""
import shutil
from pathlib import Path

BUNDLE = "tex-mml-chtml.js"
# Speech rules and the SVG renderer are never used by the book: 20 MB saved.
SKIP = shutil.ignore_patterns("sre", "svg", "tex-svg*", "mml-svg*", "tex-mml-svg*")


def _mathjax_source() -> Path:
    try:
        import mathjax  # the django-static-mathjax distribution
    except ImportError as err:
        raise RuntimeError(
            "offline_mathjax needs the 'django-static-mathjax' package: "
            "run `make venv` to install the course's pinned environment"
        ) from err
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _point_pages_at_local_copy(app, config):
    config.mathjax_path = f"mathjax/{BUNDLE}"


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / BUNDLE).exists():
        shutil.copytree(_mathjax_source(), target, ignore=SKIP, dirs_exist_ok=True)


def setup(app):
    app.connect("config-inited", _point_pages_at_local_copy, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
