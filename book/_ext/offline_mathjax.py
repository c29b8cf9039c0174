"""Serve MathJax from the built book instead of a CDN.

Sphinx points pages at MathJax on jsDelivr by default, which fails on machines
with no internet (and in any classroom behind a strict proxy). The PyPI package
``jupyter-server-mathjax`` ships MathJax 2.7; this extension copies it into
``_static/mathjax`` of the HTML output and points every page at that copy.
"""
import shutil
from pathlib import Path

CONFIG = "TeX-AMS-MML_HTMLorMML-full"


def _mathjax_source() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as err:  # pragma: no cover - the pinned env has it
        raise RuntimeError(
            "offline_mathjax needs the 'jupyter-server-mathjax' package: "
            "run `make venv` to install the course's pinned environment"
        ) from err
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def _point_pages_at_local_copy(app, config):
    # MathJax 2 reads its own configuration from the query string; Sphinx's
    # mathjax3_config would be ignored by it.
    config.mathjax_path = f"mathjax/MathJax.js?config={CONFIG}"
    config.mathjax3_config = None
    config.mathjax2_config = {
        "tex2jax": {
            "inlineMath": [["\\(", "\\)"]],
            "displayMath": [["\\[", "\\]"]],
            "processEscapes": True,
            "processClass": "tex2jax_process|mathjax_process|math|output_area",
        },
        "messageStyle": "none",
    }


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / "MathJax.js").exists():
        shutil.copytree(_mathjax_source(), target, dirs_exist_ok=True)


def setup(app):
    app.connect("config-inited", _point_pages_at_local_copy, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
