"""Notebooks as a student would submit them, built from the release and the
solution: what `course audit`, the project's tests and the benchmarks grade.

The release is the notebook a student starts from; a submission is the release
with some answer cells filled in: with the reference answers (the solution), with
other code (a mistake, an alternative), or left as released.
"""
from pathlib import Path

import nbformat

from .extract import _meta, release_notebook
from .notebook import BEGIN, END, read_notebook
from .paths import CourseError, solutions_dir


def strip_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if BEGIN not in line and END not in line)


def reference_answers(assignment: str, root: Path | None = None) -> dict[str, str]:
    """The solution's answer cells by grade id, markers removed."""
    notebooks = sorted((solutions_dir(root) / assignment).glob("*.ipynb"))
    if not notebooks:
        raise CourseError(f"solutions/{assignment}/ holds no notebook")
    nb = read_notebook(notebooks[0])
    return {_meta(c)["grade_id"]: strip_solution_markers(c.source) for c in nb.cells if _meta(c).get("solution")}


def answer_source(grade_id: str, assignment: str, root: Path | None = None) -> str:
    """One reference answer cell (to derive mistakes from)."""
    answers = reference_answers(assignment, root)
    if grade_id not in answers:
        raise CourseError(f"solutions/{assignment} has no answer cell '{grade_id}' (it has {', '.join(answers)})")
    return answers[grade_id]


def build(assignment: str, root: Path | None = None, replace: dict[str, str] | None = None,
          base: str = "solution", edit=None) -> nbformat.NotebookNode:
    """base="solution": every answer cell holds the reference answer; base="release":
    the untouched release. `replace` maps an answer cell's grade id to new source;
    `edit(nb)` may change anything else (delete cells, metadata...)."""
    nb = nbformat.read(release_notebook(assignment, root), as_version=4)
    answers = reference_answers(assignment, root) if base == "solution" else {}
    unknown = set(replace or {}) - {_meta(c).get("grade_id") for c in nb.cells}
    if unknown:
        raise CourseError(f"the release of {assignment} has no cell {', '.join(sorted(unknown))}")
    for cell in nb.cells:
        gid = _meta(cell).get("grade_id")
        if replace and gid in replace:
            cell.source = replace[gid]
        elif gid in answers:
            cell.source = answers[gid]
    if edit:
        edit(nb)
    return nb


def write(path: Path, assignment: str, root: Path | None = None, **kwargs) -> Path:
    nbformat.write(build(assignment, root, **kwargs), path)
    return path
