"""Submitted notebooks for tests (autograder.submissions builds them) and classes
of them in a course folder."""
from pathlib import Path

from autograder import submissions
from conftest import ROOT


def submission(tmp_path: Path, replace: dict[str, str] | None = None, base: str = "solution",
               assignment: str = "a03", name: str = "submission.ipynb", edit=None) -> Path:
    """A notebook as a student would submit it, written to tmp_path/name (see
    autograder.submissions.build)."""
    return submissions.write(tmp_path / name, assignment, ROOT, replace=replace, base=base, edit=edit)


def answer_source(grade_id: str, assignment: str = "a03") -> str:
    return submissions.answer_source(grade_id, assignment, ROOT)


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
