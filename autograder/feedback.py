"""Feedback pages students can read: nbgrader's generate_feedback with the course's
template (autograder/templates/course_feedback), then MathJax 3 inlined into each
page, so that it typesets offline and wherever the file ends up."""
from pathlib import Path

import nbgrader

from .gradebook import run_nbgrader

TEMPLATES = Path(__file__).resolve().parent / "templates"
NBGRADER_TEMPLATES = Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader" / "templates"
MARKER = "<!-- course: mathjax -->"


def mathjax_source() -> str:
    """MathJax 3's TeX-to-SVG bundle: its fonts are inside it, so one file is all a page needs."""
    import mathjax  # the django-static-mathjax distribution, which the book uses too
    return (Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js").read_text()


def generate(assignment: str, root: Path, url: str, student: str | None = None) -> list[Path]:
    """Write feedback/<student>/<assignment>/*.html; returns the pages written."""
    extra = [f"--student={student}"] if student else []
    run_nbgrader(["generate_feedback", assignment, "--force", *extra,
                  "--HTMLExporter.template_name=course_feedback", "--HTMLExporter.template_file=page.html.j2",
                  f"--HTMLExporter.extra_template_basedirs={NBGRADER_TEMPLATES}",
                  f"--HTMLExporter.extra_template_basedirs={TEMPLATES}"], root, url)
    pages = sorted((root / "feedback").glob(f"{student or '*'}/{assignment}/*.html"))
    script = None
    for page in pages:
        html = page.read_text()
        if MARKER in html:
            script = script or mathjax_source()
            page.write_text(html.replace(MARKER, f"<script>{script}</script>", 1))
    return pages
