"""Where things live in the course repository."""
import os
import re
from pathlib import Path

ASSIGNMENT_NAME = re.compile(r"^a\d\d$")


class CourseError(Exception):
    """A problem the user can fix; the CLI prints it as one line, no traceback."""


class GraderError(Exception):
    """Grading itself failed for a notebook (the sandbox, the suite, the clock): no
    grade can be given, and the gradebook must keep the one it has."""


def course_root() -> Path:
    """The repository root: $COURSE_ROOT, else the folder above this package."""
    env = os.environ.get("COURSE_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


def solutions_dir(root: Path | None = None) -> Path:
    return (root or course_root()) / "solutions"


def assignments_dir(root: Path | None = None) -> Path:
    return (root or course_root()) / "assignments"


def known_assignments(root: Path | None = None) -> list[str]:
    src = solutions_dir(root)
    if not src.is_dir():
        return []
    return sorted(p.name for p in src.iterdir() if p.is_dir() and ASSIGNMENT_NAME.match(p.name))


def check_assignment_name(name: str, root: Path | None = None) -> str:
    known = known_assignments(root)
    if name not in known:
        hint = ", ".join(known) if known else "none yet"
        if not ASSIGNMENT_NAME.match(name):
            raise CourseError(f"'{name}' is not an assignment name: use aNN, e.g. a03 (known: {hint})")
        raise CourseError(f"unknown assignment '{name}': no folder solutions/{name}/ (known: {hint})")
    return name
