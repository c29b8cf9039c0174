"""The course's command line.

  course release [aNN ...]            regenerate assignments/ from solutions/
  course grade NOTEBOOK --assignment aNN [--json]
  course autograde aNN [--jobs N] [--shard K/N] [--student ID]
  course autograde aNN --only-failed   grade again those whose grading failed
  course merge RESULTS ...            load shard results into the gradebook
  course roster students.csv          import students (id, first_name, last_name, email)
  course feedback aNN [--student ID]  HTML feedback per student
  course export [--to grades.csv]     the gradebook as CSV
  course audit [aNN ...] [--json]     is each hidden suite sound? (mistakes, alternatives, hollow answers)
"""
import argparse
import json
import os
import sys
from pathlib import Path

from .paths import CourseError, GraderError, check_assignment_name, course_root, known_assignments


def cmd_release(args) -> int:
    from . import release as release_mod
    names = args.assignments or known_assignments()
    if not names:
        raise CourseError("no assignments found: solutions/ has no aNN/ folder")
    for name in names:
        target = release_mod.release(name, out_dir=args.to)
        print(f"released {name} -> {target}")
    return 0


def _readable_notebook(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise CourseError(f"{path}: no such file")
    if not os.access(p, os.R_OK):
        raise CourseError(f"{path}: not readable (check its permissions)")
    return p


def start_zygotes(assignment: str, device: str, jobs: int = 1) -> None:
    """Boot the sandbox's zygotes now: they import torch while this process does."""
    from .config import SuiteConfig
    from .sandbox import likely_device, worker_factory, zygotes_to_start
    device = likely_device(device)
    worker_factory(device).prestart(SuiteConfig.load(assignment).limits, zygotes_to_start(jobs, device))


def cmd_grade(args) -> int:
    check_assignment_name(args.assignment)
    notebook = _readable_notebook(args.notebook)
    if not args.in_process:
        start_zygotes(args.assignment, args.device)
    from .judge import grade, use_one_thread
    from .sandbox import isolation_warning
    use_one_thread()
    if not args.in_process and isolation_warning():
        print(isolation_warning(), file=sys.stderr)
    report = grade(notebook, args.assignment, device=args.device, in_process=args.in_process)
    if args.json:
        print(json.dumps(report, sort_keys=False))
    else:
        print(format_report(report))
    return 0


def format_report(report: dict) -> str:
    from .gradebook import report_text
    lines = [f"{report['assignment']}: {report['score']:g} / {report['max_score']:g}", ""]
    for comp in report["components"]:
        lines.append(report_text(comp))
    for err in report.get("errors", []):
        lines.append(f"note: {err}")
    return "\n".join(lines).rstrip()


def cmd_autograde(args) -> int:
    root = course_root()
    check_assignment_name(args.assignment)
    if args.jobs < 1:
        raise CourseError(f"--jobs takes a number of processes, 1 or more; got {args.jobs}")
    from . import classroom, gradebook
    shard = classroom.parse_shard(args.shard)
    url = gradebook.db_url(root, args.db)
    for path, expected in classroom.misplaced(args.assignment, root):
        print(f"skipped {path.relative_to(root)}: a submission of {args.assignment} belongs at "
              f"{expected.relative_to(root)}", file=sys.stderr)
    items = classroom.find_submissions(args.assignment, root, args.student)
    if args.only_failed:
        failed = set(gradebook.failed_students(args.assignment, root))
        items = [item for item in items if item[0] in failed]
    items = classroom.take_shard(items, shard)
    if not items:
        what = "whose grading failed" if args.only_failed else "to grade"
        print(f"no submissions of {args.assignment} {what}" + (f" in shard {args.shard}" if shard else ""))
        return 0
    jobs = min(args.jobs, len(items))
    start_zygotes(args.assignment, args.device, jobs)
    from .judge import use_one_thread
    from .sandbox import isolation_warning
    use_one_thread()
    if isolation_warning():
        print(isolation_warning(), file=sys.stderr)
    results = classroom.grade_class(args.assignment, items, root, jobs=jobs, device=args.device,
                                    progress=not args.quiet)
    if shard:
        out = Path(args.results or f"results-{args.assignment}-{shard[0]}-of-{shard[1]}.json")
        gradebook.write_results(out, args.assignment, _portable(results))
        print(f"wrote {len(results)} results to {out}; load them with `course merge {out} ...`")
        print(classroom.summary_table(results))
    else:
        kept = gradebook.store_results(args.assignment, _portable(results), root, url)
        missing = [] if args.student or args.only_failed else gradebook.missing_students(
            args.assignment, root, url, {s for s, _ in classroom.find_submissions(args.assignment, root)})
        print(classroom.summary_table(results, missing, kept))
    return 1 if any(r["status"] == "error" for r in results.values()) else 0


def _portable(results: dict) -> dict:
    """Results as plain JSON data (a shard writes them to a file)."""
    return {s: {**r, "notebook": dict(r["notebook"])} if r["status"] == "graded" else dict(r)
            for s, r in results.items()}


def cmd_merge(args) -> int:
    from . import classroom, gradebook
    root = course_root()
    merged, assignment = {}, None
    for path in args.results:
        name, results = gradebook.read_results(Path(path))
        if assignment and name != assignment:
            raise CourseError(f"{path} holds results of {name}, the others of {assignment}: merge one assignment at a time")
        assignment = name
        overlap = set(merged) & set(results)
        if overlap:
            raise CourseError(f"{path} grades students already merged ({', '.join(sorted(overlap)[:3])}): "
                              "were two shards given the same K/N?")
        merged.update(results)
    check_assignment_name(assignment)
    url = gradebook.db_url(root, args.db)
    kept = gradebook.store_results(assignment, merged, root, url)
    print(classroom.summary_table(merged, [], kept))
    return 1 if any(r.get("status") == "error" for r in merged.values()) else 0


def cmd_roster(args) -> int:
    from . import gradebook
    root = course_root()
    path = Path(args.csv)
    if not path.is_file():
        raise CourseError(f"{args.csv}: no such file")
    ids = gradebook.import_roster(path, gradebook.db_url(root, args.db))
    print(f"{len(ids)} students in the gradebook from {path}")
    return 0


def cmd_feedback(args) -> int:
    from . import feedback, gradebook
    root = course_root()
    check_assignment_name(args.assignment)
    failed = gradebook.failed_students(args.assignment, root)
    if failed:
        print(f"note: the last grading of {', '.join(failed)} failed; their feedback shows the grade the gradebook "
              f"kept. Grade them again first: course autograde {args.assignment} --only-failed", file=sys.stderr)
    pages = feedback.generate(args.assignment, root, gradebook.db_url(root, args.db), args.student)
    print(f"feedback for {len(pages)} students in {root / 'feedback'}")
    return 0


def cmd_export(args) -> int:
    from . import gradebook
    root = course_root()
    target = Path(args.to).resolve()
    gradebook.run_nbgrader(["export", f"--to={target}", "--ExportApp.plugin_class=autograder.late.CsvWithLateness"],
                           root, gradebook.db_url(root, args.db))
    print(f"grades written to {target}")
    return 0


def cmd_audit(args) -> int:
    from . import audit
    names = args.assignments or known_assignments()
    for name in names:
        check_assignment_name(name)
    if args.jobs < 1:
        raise CourseError(f"--jobs takes a number of processes, 1 or more; got {args.jobs}")
    start_zygotes(names[0], args.device, args.jobs) if names else None
    from .judge import use_one_thread
    from .sandbox import isolation_warning
    use_one_thread()
    if isolation_warning():
        print(isolation_warning(), file=sys.stderr)
    results = []
    for name in names:
        result = audit.run(name, jobs=args.jobs, device=args.device, progress=not args.quiet and not args.json)
        results.append(result)
        if not args.json:
            print(audit.table(result) + "\n")
    if args.json:
        print(audit.as_json(results))
    return 1 if any(r.failures for r in results) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="regenerate assignments/ from solutions/ with nbgrader")
    p.add_argument("assignments", nargs="*", help="aNN names (default: all)")
    p.add_argument("--to", default=None, help="release into this folder instead of assignments/")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("grade", help="grade one notebook")
    p.add_argument("notebook")
    p.add_argument("--assignment", required=True)
    p.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--in-process", action="store_true",
                   help="run the student's code in this process (debugging suites; NOT safe for real submissions)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("autograde", help="grade submitted/<student>/aNN/ into the gradebook")
    p.add_argument("assignment")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--shard", default=None, help="K/N: grade every N-th student from the K-th, write a results file")
    p.add_argument("--results", default=None, help="where --shard writes its results file")
    p.add_argument("--student", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--db", default=None, help="gradebook SQLAlchemy URL (default: nbgrader_config.py)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--only-failed", action="store_true",
                   help="grade only the students whose last grading failed (grader errors)")
    p.set_defaults(func=cmd_autograde)

    p = sub.add_parser("merge", help="load shard results files into the gradebook")
    p.add_argument("results", nargs="+")
    p.add_argument("--db", default=None)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("feedback", help="write HTML feedback for each student")
    p.add_argument("assignment")
    p.add_argument("--student", default=None)
    p.add_argument("--db", default=None)
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("audit", help="check hidden suites against their banks of mistakes and alternatives")
    p.add_argument("assignments", nargs="*", help="aNN names (default: all)")
    p.add_argument("--json", action="store_true", help="print the audit as JSON")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("roster", help="import students (id, first_name, last_name, email) from a CSV file")
    p.add_argument("csv")
    p.add_argument("--db", default=None)
    p.set_defaults(func=cmd_roster)

    p = sub.add_parser("export", help="export the gradebook as CSV")
    p.add_argument("--to", default="grades.csv")
    p.add_argument("--db", default=None)
    p.set_defaults(func=cmd_export)
    return parser


def main(argv=None) -> int:
    # jsonschema (under nbformat) imports rfc3987_syntax when it is installed, and
    # that builds a parser at import time (1.2 s here) for a string format no
    # notebook uses: without it jsonschema skips that one format.
    sys.modules.setdefault("rfc3987_syntax", None)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CourseError as err:
        print(f"course: error: {err}", file=sys.stderr)
        return 2
    except GraderError as err:
        print(f"course: grading failed: {err}", file=sys.stderr)
        return 3
    except Exception as err:  # noqa: BLE001 - one line, not a traceback, unless asked for
        if os.environ.get("COURSE_DEBUG") == "1":
            raise
        first = (str(err).strip().splitlines() or [""])[0][:300]
        print(f"course: internal error: {type(err).__name__}: {first} (set COURSE_DEBUG=1 to see the traceback)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
