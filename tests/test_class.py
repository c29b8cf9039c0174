"""A class's grades are never lost: an instructor's first class, end to end, and
what happens when the grader itself fails.

* a grader failure (here: a sandbox whose workers cannot start) is an error, not a
  grade: the gradebook keeps the earlier grade, the summary names the student and
  the reason, the command exits 1, and --only-failed grades just those students;
* `course grade` and the other commands print one line, never a traceback;
* a roster gives names and emails to the export; due dates, timestamps and a late
  policy from nbgrader_config.py give lateness and penalties in it;
* submissions in the wrong place are reported with the right place; students of
  the gradebook with no submission are listed as missing;
* the same class graded into PostgreSQL exports the same grades as SQLite.
"""
import csv
import os
import shutil
import stat
import subprocess

import pytest
from nbgrader.api import Gradebook

from conftest import ROOT, course
from submissions import answer_source, submission, submitted_class

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("class")]
WRONG_MASK = answer_source("answer-padding-mask").replace("positions[None, :] < lengths[:, None]",
                                                          "positions[None, :] < lengths[:, None] - 1")
ROSTER = ("id,first_name,last_name,email\n"
          "ada,Ada,Lovelace,ada@example.edu\ncy,Cy,Young,cy@example.edu\neve,Eve,Moneypenny,eve@example.edu\n")
CONFIG = '''
c.Course.due_dates = {"a03": "2026-12-01 12:00:00 UTC"}
c.AssignLatePenalties.plugin_class = "autograder.late.PercentPerDay"
c.PercentPerDay.percent_per_day = 10
'''


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """ada (on time, full marks), cy (a day and an hour late, one mistake), eve (on the
    roster, no submission), dave (a notebook in the wrong place)."""
    root = tmp_path_factory.mktemp("class")
    for name in ("solutions", "assignments"):
        shutil.copytree(ROOT / name, root / name)
    (root / "nbgrader_config.py").write_text((ROOT / "nbgrader_config.py").read_text() + CONFIG)
    scratch = tmp_path_factory.mktemp("notebooks")
    submitted_class(root, {"ada": submission(scratch, name="ada.ipynb"),
                           "cy": submission(scratch, replace={"answer-padding-mask": WRONG_MASK}, name="cy.ipynb")})
    (root / "submitted" / "ada" / "a03" / "timestamp.txt").write_text("2026-12-01 11:59:00 UTC")
    (root / "submitted" / "cy" / "a03" / "timestamp.txt").write_text("2026-12-02 13:00:00 UTC")
    (root / "submitted" / "dave").mkdir()
    shutil.copy(scratch / "ada.ipynb", root / "submitted" / "dave" / "a03.ipynb")
    (root / "roster.csv").write_text(ROSTER)
    return root


def in_class(klass, *args, env=None):
    return course(*args, env={"COURSE_ROOT": str(klass), **(env or {})})


def one_line(proc, code):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def table(stdout: str) -> dict[str, str]:
    """The summary table's rows by student."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    rows = {}
    for line in lines[start:]:
        if not line.strip() or line[0].isdigit():
            break
        rows[line.split()[0]] = line
    return rows


def scores(klass, db=None):
    """Each student's score in the gradebook, after any late penalty (None: no submission)."""
    with Gradebook(db or f"sqlite:///{klass}/gradebook.db") as gb:
        subs = {s.id: (gb.find_submission("a03", s.id) if s.submissions else None) for s in gb.students}
        return {k: (round(sub.score - (sub.late_submission_penalty or 0), 6) if sub else None)
                for k, sub in subs.items()}


@pytest.fixture(scope="module")
def graded(klass):
    proc = in_class(klass, "roster", str(klass / "roster.csv"))
    assert proc.returncode == 0 and "3 students" in proc.stdout, proc.stderr
    proc = in_class(klass, "autograde", "a03", "--quiet", "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_first_grading(klass, graded):
    assert "skipped submitted/dave/a03.ipynb: a submission of a03 belongs at submitted/dave/a03/a03.ipynb" \
        in graded.stderr, graded.stderr
    rows = table(graded.stdout)
    assert set(rows) == {"ada", "cy", "eve"} and "no submission" in rows["eve"], graded.stdout
    assert "13 GPU tests not graded" in rows["ada"], "notes say what they count"
    assert "1.0 days late, -" in rows["cy"], "the summary shows the score after the late penalty, and why"
    got = scores(klass)
    assert got["ada"] == 10.0 and 7.2 < got["cy"] < 8.0 and got["eve"] is None, got
    assert f" {got['cy']:g} " in rows["cy"], rows["cy"]


def test_export_carries_the_roster_and_lateness(klass, graded):
    proc = in_class(klass, "export", "--to", str(klass / "grades.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((klass / "grades.csv").open())}
    assert set(rows) == {"ada", "cy", "eve"}
    assert (rows["cy"]["first_name"], rows["cy"]["last_name"], rows["cy"]["email"]) == ("Cy", "Young",
                                                                                       "cy@example.edu")
    assert float(rows["ada"]["days_late"]) == 0 and float(rows["ada"]["late_submission_penalty"]) == 0
    raw, days = float(rows["cy"]["raw_score"]), float(rows["cy"]["days_late"])
    assert days == pytest.approx(25 / 24, abs=1e-3)
    # Two days begun at 10% each: 20% of the raw score.
    assert float(rows["cy"]["late_submission_penalty"]) == pytest.approx(0.2 * raw)
    assert float(rows["cy"]["score"]) == pytest.approx(0.8 * raw)
    assert rows["eve"]["timestamp"] == "" and float(rows["eve"]["score"]) == 0.0


@pytest.fixture()
def broken_sandbox(tmp_path):
    """A bubblewrap that passes the grader's probe and then fails every real start,
    as it did for a checkout under /tmp: workers cannot start."""
    shim = tmp_path / "bin" / "bwrap"
    shim.parent.mkdir()
    shim.write_text('#!/bin/sh\nfor last; do :; done\n[ "$last" = true ] && exit 0\n'
                    'echo "bwrap: Can\'t mount tmpfs on /newroot/tmp" >&2\nexit 1\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}


def test_grader_failure_keeps_every_grade_and_only_failed_regrades(klass, graded, broken_sandbox):
    before = scores(klass)
    proc = in_class(klass, "autograde", "a03", "--quiet", "--device", "cpu", env=broken_sandbox)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = table(proc.stdout)
    for student in ("ada", "cy"):
        assert "ERROR" in rows[student] and "could not start a worker" in rows[student], proc.stdout
        assert f"gradebook keeps {before[student]:g}" in rows[student], proc.stdout
        assert (klass / "autograded" / student / "a03" / "grader-error.json").exists()
    assert "--only-failed" in proc.stdout
    assert scores(klass) == before, "a grader failure changed the gradebook"

    proc = in_class(klass, "autograde", "a03", "--quiet", "--device", "cpu", "--only-failed", "--student", "cy")
    assert proc.returncode == 0 and set(table(proc.stdout)) == {"cy"}, proc.stdout + proc.stderr
    proc = in_class(klass, "autograde", "a03", "--quiet", "--device", "cpu", "--only-failed")
    assert proc.returncode == 0 and set(table(proc.stdout)) == {"ada"}, proc.stdout + proc.stderr
    assert not list(klass.glob("autograded/*/a03/grader-error.json"))
    proc = in_class(klass, "autograde", "a03", "--quiet", "--only-failed")
    assert proc.returncode == 0 and "no submissions of a03 whose grading failed" in proc.stdout
    assert scores(klass) == before


def test_grade_with_a_broken_sandbox_is_one_line(klass, broken_sandbox):
    nb = klass / "submitted" / "ada" / "a03" / "a03.ipynb"
    line = one_line(in_class(klass, "grade", str(nb), "--assignment", "a03", "--device", "cpu",
                             env=broken_sandbox), 3)
    assert line.startswith("course: grading failed: the sandbox could not start a worker"), line
    assert "COURSE_DEBUG_WORKER=1" in line


def test_a_corrupt_gradebook_is_one_line(klass, tmp_path):
    broken = tmp_path / "gradebook.db"
    broken.write_bytes(b"this is not a database" * 100)
    line = one_line(in_class(klass, "export", "--db", f"sqlite:///{broken}", "--to", str(tmp_path / "g.csv")), 2)
    assert "nbgrader export failed" in line, line
    line = one_line(in_class(klass, "roster", str(klass / "roster.csv"), "--db", f"sqlite:///{broken}"), 3)
    assert line.startswith("course: internal error: DatabaseError"), line


def test_roster_errors_say_what_to_fix(klass, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,mail\nAda,ada@example.edu\n")
    line = one_line(in_class(klass, "roster", str(bad)), 2)
    assert "needs a column 'id'" in line, line


# --- PostgreSQL -------------------------------------------------------------------------------

def postgres_url() -> str:
    """COURSE_TEST_POSTGRES (set by .ci/run, which starts Debian's server), if it answers."""
    url = os.environ.get("COURSE_TEST_POSTGRES")
    if not url:
        pytest.skip("no PostgreSQL server: .ci/run starts one and sets COURSE_TEST_POSTGRES")
    pytest.importorskip("psycopg", reason="the postgres extra is not installed (pip install -e .[postgres])")
    import sqlalchemy
    try:
        with sqlalchemy.create_engine(url).connect():
            pass
    except sqlalchemy.exc.OperationalError as err:
        pytest.skip(f"PostgreSQL at {url} does not answer: {str(err).splitlines()[0]}")
    return url


def test_a_class_in_postgresql_exports_as_in_sqlite(klass, graded, tmp_path):
    url = postgres_url()
    import sqlalchemy
    with sqlalchemy.create_engine(url).begin() as conn:  # a clean schema for this run
        conn.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    for args in (["roster", str(klass / "roster.csv")], ["autograde", "a03", "--quiet", "--device", "cpu"],
                 ["export", "--to", str(tmp_path / "pg.csv")]):
        proc = in_class(klass, *args, "--db", url)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = in_class(klass, "export", "--to", str(tmp_path / "lite.csv"))
    assert proc.returncode == 0, proc.stderr
    assert scores(klass, url) == scores(klass)
    read = lambda p: sorted(csv.DictReader(p.open()), key=lambda r: r["student_id"])  # noqa: E731
    assert read(tmp_path / "pg.csv") == read(tmp_path / "lite.csv")
