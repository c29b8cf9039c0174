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


def submitted_class(root: Path, notebooks: dict, assignment: str = "a03") -> Path:
    """root/submitted/<student>/<assignment>/<assignment>.ipynb for each student:
    `notebooks` maps a student to a notebook's path, or to text for a broken file."""
    for student, nb in notebooks.items():
        folder = root / "submitted" / student / assignment
        folder.mkdir(parents=True)
        target = folder / f"{assignment}.ipynb"
        if isinstance(nb, Path):
            target.write_bytes(nb.read_bytes())
        else:
            target.write_text(nb)
    return root
