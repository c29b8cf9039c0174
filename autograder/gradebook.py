"""Where grades go: nbgrader's gradebook, autograded notebooks, feedback, CSV.

The gradebook is nbgrader's own database (SQLite by default, any SQLAlchemy URL
by configuration), so nbgrader's formgrader, feedback and export keep working on
grades that the judge produced.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import nbgrader
import nbgrader.api
from nbgrader.api import Gradebook, MissingEntry
from traitlets.config import Config

from .extract import _meta, release_notebook
from .paths import CourseError


def nbgrader_config(root: Path) -> Config:
    """nbgrader_config.py, evaluated the way nbgrader does."""
    config = Config()
    path = root / "nbgrader_config.py"
    if path.exists():
        exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: config, "__file__": str(path)})
    return config


def db_url(root: Path, override: str | None = None) -> str:
    if override:
        return override
    url = nbgrader_config(root).CourseDirectory.get("db_url")
    return url or f"sqlite:///{root / 'gradebook.db'}"


def alembic_head() -> str:
    """The gradebook schema's revision, read from nbgrader's migration scripts.
    nbgrader asks a subprocess (`alembic heads`) for it, which imports nbgrader
    again: 3 s of every command that opens the gradebook."""
    from alembic.script import ScriptDirectory
    return ScriptDirectory(str(Path(nbgrader.__file__).parent / "alembic")).get_current_head()


NBGRADER_ALEMBIC_HEAD = nbgrader.api.get_alembic_version  # nbgrader's own, for the test that compares


def open_gradebook(url: str) -> Gradebook:
    nbgrader.api.get_alembic_version = alembic_head
    return Gradebook(url)


def ensure_assignment(gb: Gradebook, assignment: str, root: Path, duedate=None) -> str:
    """Register the assignment (and its due date), its notebook and graded cells;
    returns the notebook name."""
    release_path = release_notebook(assignment, root)
    nb = nbformat.read(release_path, as_version=4)
    name = release_path.stem
    gb.update_or_create_assignment(assignment, duedate=duedate)
    gb.update_or_create_notebook(name, assignment)
    for cell in nb.cells:
        meta = _meta(cell)
        if meta.get("grade"):
            gb.update_or_create_grade_cell(meta["grade_id"], name, assignment,
                                           max_score=float(meta["points"]), cell_type=cell.cell_type)
        if meta.get("solution"):
            gb.update_or_create_solution_cell(meta["grade_id"], name, assignment)
        if meta.get("locked") or meta.get("grade"):
            gb.update_or_create_source_cell(meta["grade_id"], name, assignment, cell_type=cell.cell_type,
                                            locked=bool(meta.get("locked")), source=cell.source,
                                            checksum=meta.get("checksum"))
    return name


def due_date(config: Config, assignment: str):
    """`c.Course.due_dates = {"a03": "2026-12-01 23:59:00 UTC"}` in nbgrader_config.py."""
    from nbgrader.utils import parse_utc
    dates = config.Course.get("due_dates", {}) if "Course" in config else {}
    if assignment not in dates:
        return None
    try:
        return parse_utc(dates[assignment])
    except (ValueError, OverflowError, TypeError):
        raise CourseError(f"nbgrader_config.py: c.Course.due_dates['{assignment}'] = {dates[assignment]!r} is not "
                          "a time (write it as '2026-12-01 23:59:00 UTC')") from None


def late_policy(config: Config):
    """nbgrader's late-submission plugin, as nbgrader_config.py configures it:
    `c.LateSubmissionPlugin.penalty_method = "zero"`, or another class through
    `c.AssignLatePenalties.plugin_class` (the course has autograder.late.PercentPerDay)."""
    from traitlets.utils.importstring import import_item
    name = config.AssignLatePenalties.get("plugin_class", "nbgrader.plugins.LateSubmissionPlugin") \
        if "AssignLatePenalties" in config else "nbgrader.plugins.LateSubmissionPlugin"
    try:
        cls = import_item(name) if isinstance(name, str) else name
    except (ImportError, AttributeError):
        raise CourseError(f"nbgrader_config.py: c.AssignLatePenalties.plugin_class = {name!r} cannot be imported") \
            from None
    return cls(config=config)


def record(gb: Gradebook, assignment: str, notebook: str, student: str, report: dict,
           timestamp=None, policy=None) -> float:
    """The report's scores into the gradebook, with the submission time and the late
    penalty it earns; returns the penalty."""
    gb.update_or_create_student(student)
    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        submission = gb.add_submission(assignment, student)
    submission.timestamp = timestamp
    for comp in report["components"]:
        grade = gb.find_grade(comp["grade_id"], notebook, assignment, student)
        grade.auto_score = comp["score"]
    nb = gb.find_submission_notebook(notebook, assignment, student)
    late = submission.total_seconds_late
    penalty = (policy.late_submission_penalty(student, report["score"], late) if policy and late > 0 else None) or 0.0
    nb.late_submission_penalty = penalty
    gb.db.commit()
    return penalty


def store_results(assignment: str, results: dict, root: Path, url: str) -> dict:
    """Graded results into the gradebook and autograded/<student>/<assignment>/; a
    grader error is recorded beside them (grader-error.json) and touches no grade.
    Returns, for every student, what the gradebook now holds: {"score" (after any
    late penalty), "penalty", "days_late"}, or None for a student never graded."""
    import warnings
    from datetime import datetime, timezone

    from sqlalchemy.exc import SAWarning

    from .classroom import submission_time
    config = nbgrader_config(root)
    policy, kept = late_policy(config), {}
    # nbgrader 0.9 trips SQLAlchemy 2's autoflush warnings on add_submission; harmless.
    with warnings.catch_warnings(), open_gradebook(url) as gb:
        warnings.simplefilter("ignore", SAWarning)
        nb_name = ensure_assignment(gb, assignment, root, due_date(config, assignment))
        for student, result in sorted(results.items()):
            folder = root / "autograded" / student / assignment
            folder.mkdir(parents=True, exist_ok=True)
            if result.get("status") == "error":
                (folder / "grader-error.json").write_text(json.dumps(
                    {"reason": result["reason"], "time": datetime.now(timezone.utc).isoformat()}, indent=1))
                kept[student] = held(gb, assignment, student)
                continue
            record(gb, assignment, nb_name, student, result["report"],
                   submission_time(root, student, assignment), policy)
            kept[student] = held(gb, assignment, student)
            nbformat.write(nbformat.from_dict(result["notebook"]), folder / f"{nb_name}.ipynb")
            (folder / "report.json").write_text(json.dumps(result["report"], indent=1))
            (folder / "grader-error.json").unlink(missing_ok=True)
    return kept


def held(gb: Gradebook, assignment: str, student: str) -> dict | None:
    """What the gradebook holds for one student: the score after the late penalty."""
    try:
        sub = gb.find_submission(assignment, student)
    except MissingEntry:
        return None
    penalty = sub.late_submission_penalty or 0.0
    return {"score": max(0.0, sub.score - penalty), "penalty": penalty, "days_late": sub.total_seconds_late / 86400}


def failed_students(assignment: str, root: Path) -> list[str]:
    """Students whose last grading of `assignment` failed (grader-error.json)."""
    return sorted(p.parent.parent.name for p in (root / "autograded").glob(f"*/{assignment}/grader-error.json"))


def missing_students(assignment: str, root: Path, url: str, submitted: set[str]) -> list[str]:
    """Students in the gradebook (a roster, or earlier assignments) with no submission."""
    with open_gradebook(url) as gb:
        return sorted(s.id for s in gb.students if s.id not in submitted)


def import_roster(path: Path, url: str) -> list[str]:
    """Students from a CSV file with a header: id (or student_id), first_name,
    last_name, email (names and email optional). Returns the ids imported."""
    import csv
    try:
        rows = list(csv.DictReader(path.open(newline="", encoding="utf-8-sig")))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CourseError(f"{path}: cannot read it as CSV ({err})") from None
    key = next((k for k in ("id", "student_id") if rows and k in rows[0]), None)
    if key is None:
        raise CourseError(f"{path}: the header needs a column 'id' (or 'student_id'), and may have first_name, "
                          "last_name and email")
    ids = []
    with open_gradebook(url) as gb:
        for n, row in enumerate(rows, start=2):
            student = (row.get(key) or "").strip()
            if not student:
                raise CourseError(f"{path}, line {n}: no student id")
            fields = {f: (row.get(f) or "").strip() or None for f in ("first_name", "last_name", "email")}
            gb.update_or_create_student(student, **fields)
            ids.append(student)
    return ids


def report_text(comp: dict) -> str:
    """What a test cell of the autograded notebook shows: the component's tests."""
    marks = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "timeout": "TIMEOUT", "not_graded": "NOT GRADED"}
    lines = [f"{comp['name']}: {comp['score']:g} / {comp['max_score']:g} points (hidden tests)"]
    for t in comp["tests"]:
        lines.append(f"  [{marks.get(t['outcome'], t['outcome'])}] {t['message']}")
    if not comp["tests"]:
        lines.append("  no test could run for this component")
    return "\n".join(lines) + "\n"


def autograded_notebook(submitted: Path | None, report: dict, assignment: str, root: Path) -> nbformat.NotebookNode:
    """The submission with each graded test cell's output replaced by its report.
    Unreadable submissions are replaced by the release, so feedback still renders."""
    try:
        if submitted is None:
            raise ValueError("no notebook")
        nb = nbformat.read(submitted, as_version=4)
        nbformat.validate(nb)
    except Exception:  # noqa: BLE001 - any unreadable notebook
        nb = nbformat.read(release_notebook(assignment, root), as_version=4)
    by_grade_id = {c["grade_id"]: c for c in report["components"]}
    release = {_meta(c).get("grade_id"): c.source.strip()
               for c in nbformat.read(release_notebook(assignment, root), as_version=4).cells}
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type == "code":
            cell.outputs = []
            comp = by_grade_id.get(meta.get("grade_id"))
            if comp is not None:
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=report_text(comp))]
                cell.metadata["course"] = {"component": comp["name"]}
        if meta.get("solution") and cell.source.strip() == release.get(meta.get("grade_id")):
            cell.metadata["course"] = {"unanswered": True}  # the feedback page says so
    if report.get("errors"):
        note = "**Grader notes**\n\n" + "\n".join(f"- {e}" for e in report["errors"])
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    return nb


def run_nbgrader(args: list[str], root: Path, url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}",
           f"--CourseDirectory.db_url={url}"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [l for l in proc.stderr.splitlines() if "ERROR" in l] or proc.stderr.splitlines() or ["no output"]
        raise CourseError(f"nbgrader {args[0]} failed: {errors[-1].strip()[:300]}")
    return proc


def write_results(path: Path, assignment: str, results: dict) -> None:
    path.write_text(json.dumps({"assignment": assignment, "results": results}, indent=1, sort_keys=True))


def read_results(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
        return data["assignment"], data["results"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CourseError(f"{path} is not a results file written by `course autograde --shard` ({err})") from None
