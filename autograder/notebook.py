"""Reading nbgrader source notebooks and checking their metadata."""
from pathlib import Path

import nbformat

from .paths import CourseError

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook, or raise a CourseError that says what to do."""
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except FileNotFoundError:
        raise CourseError(f"{path}: file not found") from None
    except Exception as err:  # nbformat raises many kinds for broken JSON
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CourseError(
            f"{path} is not a valid notebook ({reason[:120]}): restore it with `git checkout -- {path}` "
            "or re-save it from Jupyter"
        ) from None
    return nb


def cell_label(index: int, cell) -> str:
    cid = cell.get("id")
    return f"cell {index + 1}" + (f" (id {cid})" if cid else "")


def check_source_notebook(path: Path) -> nbformat.NotebookNode:
    """The checks nbgrader skips: every solution block sits in a marked answer cell,
    markers pair up, and grade ids are unique."""
    nb = read_notebook(path)
    seen_ids = {}
    graded = 0
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        src = cell.source
        where = f"{path}: {cell_label(i, cell)}"
        if BEGIN in src or END in src:
            if not meta or not meta.get("solution"):
                raise CourseError(
                    f"{where} has a solution block but no nbgrader answer metadata: mark it "
                    "'Autograded answer' in Jupyter's nbgrader toolbar "
                    "(metadata.nbgrader = {solution: true, grade_id: ...})"
                )
            if src.count(BEGIN) != src.count(END):
                raise CourseError(f"{where} has {src.count(BEGIN)} '{BEGIN}' but {src.count(END)} '{END}': pair them up")
        if meta:
            gid = meta.get("grade_id")
            if not gid:
                raise CourseError(f"{where} has nbgrader metadata without a grade_id: give it a unique one")
            if gid in seen_ids:
                raise CourseError(f"{where} repeats grade_id '{gid}' of {seen_ids[gid]}: grade ids must be unique")
            seen_ids[gid] = cell_label(i, cell)
            if meta.get("grade"):
                graded += 1
                if not meta.get("points", 0) > 0:
                    raise CourseError(f"{where} is a graded cell with no points: set metadata.nbgrader.points")
    if graded == 0:
        raise CourseError(f"{path} has no graded test cell: an assignment needs at least one")
    return nb
