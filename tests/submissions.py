"""Build submitted notebooks for tests: the solution (or the release) with some
cells replaced, as a student's notebook would arrive."""
import re
from pathlib import Path

import nbformat

from conftest import ROOT


def strip_solution_markers(source: str) -> str:
    return "\n".join(l for l in source.splitlines() if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l)


def submission(tmp_path: Path, replace: dict[str, str] | None = None, base: str = "solution",
               assignment: str = "a03", name: str = "submission.ipynb", edit=None) -> Path:
    """A notebook as a student would submit it.

    base="solution": every answer cell holds the reference answer (markers removed);
    base="release": the untouched student release. `replace` maps a cell's grade id
    to new source; `edit(nb)` may change anything else (delete cells, metadata...).
    """
    release = nbformat.read(next((ROOT / "assignments" / assignment).glob("*.ipynb")), as_version=4)
    if base == "solution":
        source_nb = nbformat.read(next((ROOT / "solutions" / assignment).glob("*.ipynb")), as_version=4)
        answers = {c.metadata["nbgrader"]["grade_id"]: strip_solution_markers(c.source)
                   for c in source_nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
        for cell in release.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in answers:
                cell.source = answers[gid]
    for cell in release.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if replace and gid in replace:
            cell.source = replace[gid]
    if edit:
        edit(release)
    path = tmp_path / name
    nbformat.write(release, path)
    return path


def answer_source(grade_id: str, assignment: str = "a03") -> str:
    """The reference answer cell's source, markers removed (to derive mistakes from)."""
    nb = nbformat.read(next((ROOT / "solutions" / assignment).glob("*.ipynb")), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return strip_solution_markers(cell.source)
