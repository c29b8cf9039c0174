"""Grade a whole class: find submissions, grade them in parallel, store results."""
import multiprocessing
import multiprocessing.util
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from .extract import release_notebook
from .sandbox import forks_judges
from .paths import CourseError


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
    """Runs in a pool process: one student's report and autograded notebook."""
    from .gradebook import autograded_notebook
    from .judge import empty_report, grade
    student, notebook, assignment, device, root, limits = task
    if notebook is None:
        report = empty_report(assignment, root, f"no notebook found in submitted/{student}/{assignment}/")
    else:
        try:
            report = grade(notebook, assignment, device=device, root=root, limits=limits)
        except CourseError as err:
            report = empty_report(assignment, root, str(err))
        except Exception as err:  # noqa: BLE001 - a grader fault must not stop the class
            report = empty_report(assignment, root, f"internal grader error ({type(err).__name__}: {err}); "
                                                    "ask your instructor to regrade")
    try:
        nb = autograded_notebook(notebook, report, assignment, root)
    except Exception:  # noqa: BLE001 - a notebook too broken to annotate gets the release
        nb = autograded_notebook(None, report, assignment, root)
    return student, {"report": report, "notebook": nb}


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


def summary_table(results: dict) -> str:
    rows = [("student", "score", "max", "notes")]
    for student, r in sorted(results.items()):
        rep = r["report"]
        rows.append((student, f"{rep['score']:g}", f"{rep['max_score']:g}", str(len(rep.get("errors", [])))))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(results) > 0:
        mean = sum(r["report"]["score"] for r in results.values()) / len(results)
        lines.append(f"{len(results)} notebooks graded; mean score {mean:.2f}")
    return "\n".join(lines)
