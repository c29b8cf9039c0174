"""Grade a whole class: find submissions, grade them in parallel, store results."""
import multiprocessing
import multiprocessing.util
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from .extract import release_notebook
from .sandbox import forks_judges
from .paths import CourseError, GraderError


def find_submissions(assignment: str, root: Path, student: str | None = None) -> list[tuple[str, Path | None]]:
    """submitted/<student>/<assignment>/<notebook>.ipynb, sorted by student id."""
    base = root / "submitted"
    if not base.is_dir():
        raise CourseError(f"no submitted/ folder in {root}: collect submissions into submitted/<student>/{assignment}/")
    wanted = release_notebook(assignment, root).name
    found = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if student and folder.name != student:
            continue
        notebooks = sorted((folder / assignment).glob("*.ipynb"))
        if not (folder / assignment).is_dir():
            continue
        exact = [n for n in notebooks if n.name == wanted]
        found.append((folder.name, (exact or notebooks or [None])[0]))
    if student and not found:
        raise CourseError(f"no submission of {assignment} for student '{student}' in submitted/")
    return found


def misplaced(assignment: str, root: Path) -> list[tuple[Path, Path]]:
    """Notebooks for `assignment` that find_submissions cannot see, each with the
    path it should have: submitted/<student>/<assignment>/<notebook>.ipynb."""
    base, wanted = root / "submitted", release_notebook(assignment, root).name
    if not base.is_dir():
        return []
    found = [(p, base / "<student>" / assignment / wanted) for p in sorted(base.glob("*.ipynb"))]
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if not (folder / assignment).is_dir():
            found += [(p, folder / assignment / wanted) for p in sorted(folder.glob("*.ipynb"))
                      if assignment in p.stem]
    return found


def submission_time(root: Path, student: str, assignment: str):
    """When the student submitted: nbgrader's submitted/<student>/<assignment>/timestamp.txt, if any."""
    from nbgrader.utils import parse_utc
    path = root / "submitted" / student / assignment / "timestamp.txt"
    if not path.is_file():
        return None
    try:
        return parse_utc(path.read_text().strip())
    except (ValueError, OverflowError):
        raise CourseError(f"{path} does not hold a time (expected e.g. 2026-12-01 23:59:00 UTC)") from None


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    if not spec:
        return None
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise CourseError(f"--shard takes K/N with 1 <= K <= N, e.g. 2/4; got '{spec}'") from None
    if not 1 <= k <= n:
        raise CourseError(f"--shard takes K/N with 1 <= K <= N, e.g. 2/4; got '{spec}'")
    return k, n


def take_shard(items: list, shard: tuple[int, int] | None) -> list:
    if shard is None:
        return items
    k, n = shard
    return items[k - 1::n]


def _grade_one(task):
    """Runs in a pool process: (student, result). A result is graded (a report and the
    autograded notebook) or, when grading itself failed, an error with its reason:
    never a grade of 0 for the grader's fault."""
    from .gradebook import autograded_notebook
    from .judge import empty_report, grade
    student, notebook, assignment, device, root, limits = task
    if notebook is None:
        report = empty_report(assignment, root, f"no notebook found in submitted/{student}/{assignment}/")
    else:
        try:
            report = grade(notebook, assignment, device=device, root=root, limits=limits)
        except Exception as err:  # noqa: BLE001 - a grader fault must not stop the class, nor count as a grade
            return student, {"status": "error", "reason": _reason(err)}
    try:
        nb = autograded_notebook(notebook, report, assignment, root)
    except Exception:  # noqa: BLE001 - a notebook too broken to annotate gets the release
        nb = autograded_notebook(None, report, assignment, root)
    return student, {"status": "graded", "report": report, "notebook": nb}


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, (GraderError, CourseError)):
        return text
    return f"internal error ({type(err).__name__}: {text})"[:400]


_POOL_ZYGOTES = []  # set before forking judge processes: zygote i is for the i-th of them


def _start_judge(device: str, claimed) -> None:
    """Pool initializer: one torch thread, and the zygote handed over for this
    process, if it was forked."""
    from .judge import use_one_thread
    from .sandbox import worker_factory
    use_one_thread()  # the command did already; grade_class may also be called from Python
    with claimed.get_lock():
        index, claimed.value = claimed.value, claimed.value + 1
    factory = worker_factory(device)
    if forks_judges(device):
        factory.adopt(_POOL_ZYGOTES[index] if index < len(_POOL_ZYGOTES) else None)
    # Pool processes skip atexit: close what this one used (or started) on the way out.
    multiprocessing.util.Finalize(factory, factory.close, exitpriority=10)


def grade_class(assignment: str, items: list[tuple[str, Path | None]], root: Path, jobs: int = 1,
                device: str = "auto", progress: bool = True, limits: dict | None = None) -> dict:
    from .judge import resolve_device
    device = resolve_device(device)
    tasks = [(student, nb, assignment, device, root, limits) for student, nb in items]
    return dict(judge_in_pool(_grade_one, tasks, assignment, device, jobs,
                              desc=f"grading {assignment}", unit="notebook", progress=progress))


def judge_in_pool(fn, tasks: list, assignment: str, device: str, jobs: int = 1, desc: str = "",
                  unit: str = "notebook", progress: bool = True):
    """fn(task) for every task, in this process or in `jobs` judge processes (each
    with a zygote of its own), with a progress bar; results in the order of tasks.
    `fn` must be a module-level function (spawned processes import it by name)."""
    bar = tqdm(total=len(tasks), desc=desc, unit=unit, file=sys.stderr, disable=not progress)
    results = []
    if jobs <= 1:
        for task in tasks:
            results.append(fn(task))
            bar.update()
    else:
        global _POOL_ZYGOTES
        if forks_judges(device):  # each pool process takes one of the zygotes started here
            from .config import SuiteConfig
            from .sandbox import worker_factory
            _POOL_ZYGOTES = worker_factory(device).hand_over(SuiteConfig.load(assignment).limits, jobs)
        context = multiprocessing.get_context("fork" if forks_judges(device) else "spawn")
        claimed = context.Value("i", 0)
        try:
            with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_judge,
                                     initargs=(device, claimed)) as pool:
                for result in pool.map(fn, tasks):
                    results.append(result)
                    bar.update()
        finally:
            for zygote in _POOL_ZYGOTES:
                zygote.close()
            _POOL_ZYGOTES = []
    bar.close()
    return results


def brief(message: str) -> str:
    """A grader note in a few words, for the summary table."""
    patterns = [(r"(\d+) tests need a GPU", r"\1 GPU tests not graded"),
                (r"could not be read", "notebook unreadable"),
                (r"is not assignment", "another assignment's notebook"),
                (r"no notebook found", "no notebook"),
                (r"Locked test cell '([^']+)' was (\w+)", r"test cell \1 \2"),
                (r"Locked cell '([^']+)' was (\w+)", r"cell \1 \2"),
                (r"Answer cell '([^']+)' is missing", r"\1 missing"),
                (r"Answer cell '([^']+)' raised (\w+)", r"\1 raised \2")]
    for pattern, short in patterns:
        m = re.search(pattern, message)
        if m:
            return m.expand(short)
    return message[:40]


def summary_table(results: dict, missing: list[str] = (), held: dict | None = None) -> str:
    """One row per student: the score the gradebook holds (after any late penalty), or
    ERROR and why grading failed (the gradebook keeps what it had, shown too); notes
    in a few words; roster students with no submission; what to do about errors."""
    held = held or {}
    rows = [("student", "score", "max", "notes")]
    errors = []
    for student, r in sorted(results.items()):
        now = held.get(student)
        if r.get("status") == "error":
            errors.append(student)
            keep = f"gradebook keeps {now['score']:g}" if now else "no grade recorded"
            rows.append((student, "ERROR", "", f"grader failed: {r['reason']} ({keep})"))
            continue
        rep = r["report"]
        notes = list(dict.fromkeys(brief(e) for e in rep.get("errors", [])))
        score = rep["score"]
        if now and now["penalty"] > 0:
            notes.insert(0, f"{now['days_late']:.1f} days late, -{now['penalty']:g}")
            score = now["score"]
        rows.append((student, f"{score:g}", f"{rep['max_score']:g}", "; ".join(notes)))
    rows += [(student, "-", "", "no submission") for student in missing]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  -----")
    graded = [float(row[1]) for row in rows[1:] if row[1] not in ("ERROR", "-")]
    if graded:
        lines.append(f"{_count(len(graded), 'notebook')} graded; mean score {sum(graded) / len(graded):.2f}")
    if missing:
        lines.append(f"{_count(len(missing), 'student')} of the gradebook {'has' if len(missing) == 1 else 'have'} "
                     "no submission")
    if errors:
        lines.append(f"{_count(len(errors), 'student')} not graded because the grader failed (their gradebook rows "
                     "are unchanged): fix the cause, then grade them again with --only-failed")
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
