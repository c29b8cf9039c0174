"""Late penalties and a grades export that shows lateness, as nbgrader plugins:
configured in nbgrader_config.py like nbgrader's own.

    c.Course.due_dates = {"a03": "2026-12-01 23:59:00 UTC"}
    c.AssignLatePenalties.plugin_class = "autograder.late.PercentPerDay"
    c.PercentPerDay.percent_per_day = 10     # of the score, per day or part of one
    c.PercentPerDay.max_percent = 50

nbgrader's LateSubmissionPlugin (`c.LateSubmissionPlugin.penalty_method =
"zero"` or "none", the default) works the same way.
"""
import csv
import math

from nbgrader.api import MissingEntry
from nbgrader.plugins import ExportPlugin, LateSubmissionPlugin
from traitlets import Float

DAY = 24 * 3600


class PercentPerDay(LateSubmissionPlugin):
    """A share of the score for each day late; a day begun counts as a whole one."""

    percent_per_day = Float(10.0, help="percent of the score taken per day late").tag(config=True)
    max_percent = Float(100.0, help="the most a late submission can lose, in percent").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float:
        if total_seconds_late <= 0:
            return 0.0
        days = math.ceil(total_seconds_late / DAY)
        return score * min(self.max_percent, days * self.percent_per_day) / 100


COLUMNS = ["assignment", "duedate", "timestamp", "days_late", "student_id", "last_name", "first_name", "email",
           "raw_score", "late_submission_penalty", "score", "max_score"]


class CsvWithLateness(ExportPlugin):
    """One row per student and assignment, with names, email, the submission time and
    how late it was; a student with no submission gets a row with score 0."""

    def export(self, gradebook) -> None:
        wanted_students, wanted = set(map(str, self.student)), set(map(str, self.assignment))
        with open(self.to or "grades.csv", "w", newline="") as fh:
            out = csv.DictWriter(fh, COLUMNS)
            out.writeheader()
            for assignment in gradebook.assignments:
                if wanted and assignment.name not in wanted:
                    continue
                for student in gradebook.students:
                    if wanted_students and student.id not in wanted_students:
                        continue
                    out.writerow(self.row(gradebook, assignment, student))

    @staticmethod
    def row(gradebook, assignment, student) -> dict:
        row = {"assignment": assignment.name, "duedate": assignment.duedate or "", "student_id": student.id,
               "last_name": student.last_name or "", "first_name": student.first_name or "",
               "email": student.email or "", "max_score": assignment.max_score}
        try:
            sub = gradebook.find_submission(assignment.name, student.id)
        except MissingEntry:
            return {**row, "timestamp": "", "days_late": "", "raw_score": 0.0, "late_submission_penalty": 0.0,
                    "score": 0.0}
        penalty = sub.late_submission_penalty or 0.0
        return {**row, "timestamp": sub.timestamp or "", "days_late": round(sub.total_seconds_late / DAY, 3),
                "raw_score": sub.score, "late_submission_penalty": penalty, "score": max(0.0, sub.score - penalty)}
