"""Generate student releases (assignments/aNN) from instructor sources (solutions/aNN).

nbgrader's generate_assignment does the work; this module checks the source
first, so that a broken notebook gives one actionable line instead of a traceback
from deep inside nbconvert, and keeps the release deterministic.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .notebook import check_source_notebook
from .paths import CourseError, assignments_dir, check_assignment_name, course_root, solutions_dir


def source_notebooks(assignment: str, root: Path) -> list[Path]:
    folder = solutions_dir(root) / assignment
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        raise CourseError(f"solutions/{assignment}/ holds no .ipynb notebook: add the instructor notebook there")
    return notebooks


def release(assignment: str, root: Path | None = None, out_dir: Path | None = None) -> Path:
    """Regenerate the student version of one assignment; returns its folder."""
    root = root or course_root()
    check_assignment_name(assignment, root)
    for nb in source_notebooks(assignment, root):
        check_source_notebook(nb)
    out_dir = Path(out_dir or assignments_dir(root)).resolve()
    target = out_dir / assignment
    with tempfile.TemporaryDirectory() as tmp:
        # A throwaway gradebook: releasing must not touch the class's grades.
        cmd = [
            sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force",
            f"--CourseDirectory.root={root}",
            "--CourseDirectory.source_directory=solutions",
            f"--CourseDirectory.release_directory={out_dir}",
            f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db",
        ]
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [l for l in proc.stderr.splitlines() if "ERROR" in l or "Error" in l]
        raise CourseError(f"nbgrader could not release {assignment}: {(errors or proc.stderr.splitlines() or ['no output'])[-1].strip()}")
    # nbgrader copies every file of the source folder; nothing else belongs there.
    for extra in target.glob(".ipynb_checkpoints"):
        shutil.rmtree(extra)
    return target
