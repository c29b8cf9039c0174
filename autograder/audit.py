"""`course audit aNN`: is this assignment's hidden suite sound?

Grades, in the sandbox, every notebook that says something about the suite and
checks what each must score:

  solution       full marks on every component
  release        the untouched release (every answer raises NotImplementedError): 0
  hollow         every answer cell returning zeros, a constant or its input: 0
  hollow (bank)  a hand-written hollow answer: 0 on its component, stopped by its gate
  mistake        loses points on its component, and only there (or on components
                 declared to depend on it), caught by one of the tests its bank names
  alternative    full marks

and prints one table, with a line per failure saying what went wrong where.
"""
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from . import submissions
from .banks import GATE, Banks, apply_edits
from .config import suite_dir
from .extract import _meta, components_of, read_notebook, release_notebook
from .hollow import KINDS, hollow_cell
from .paths import CourseError, course_root

ALL = "(all)"
MIN_TESTS = 8  # hidden tests per component, beyond its gate: fewer cannot cover a spec


@dataclass
class Case:
    kind: str                   # solution, release, hollow, mistake, alternative
    name: str
    component: str              # grade id, or ALL
    replace: dict = field(default_factory=dict)
    base: str = "solution"
    entry: object = None        # the bank entry


@dataclass
class Row:
    kind: str
    name: str
    component: str
    score: float
    max_score: float
    seconds: float
    caught_by: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tests: int = 0              # hidden tests graded on this component (solution rows)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Audit:
    assignment: str
    rows: list[Row]
    seconds: float
    banks: Banks
    static: list[str] = field(default_factory=list)  # from reading the suite and banks

    @property
    def failures(self) -> list[str]:
        return [f"suite: {p}" for p in self.static] + [
            f"{r.kind} {r.name} ({r.component}): {p}" for r in self.rows for p in r.problems]

    def to_json(self) -> dict:
        return {"assignment": self.assignment, "seconds": round(self.seconds, 2), "ok": not self.failures,
                "failures": self.failures, "rows": [asdict(r) for r in self.rows]}


# --- which notebooks -----------------------------------------------------------------------

def cases(assignment: str, banks: Banks, root: Path) -> list[Case]:
    components = components_of(read_notebook(release_notebook(assignment, root)))
    answers = submissions.reference_answers(assignment, root)
    cell_of = {c.grade_id: c.answer_cells for c in components}

    def cell_for(entry) -> str:
        if entry.cell:
            return entry.cell
        owned = cell_of.get(entry.component)
        if owned is None:
            raise CourseError(f"banks of {assignment}: {entry.name} names component {entry.component}, which the "
                              f"release does not have (it has {', '.join(cell_of)})")
        if len(owned) != 1:
            raise CourseError(f"banks of {assignment}: {entry.name}: {entry.component} has answer cells "
                              f"{', '.join(owned)}; say which one (cell=...)")
        return owned[0]

    found = [Case("solution", "solution", ALL), Case("release", "untouched release", ALL, base="release")]
    code_answers = {gid: src for c in components for gid in c.answer_cells for src in [answers[gid]]}
    for kind in KINDS:
        found.append(Case("hollow", f"every answer returns {'its input' if kind == 'input' else kind}", ALL,
                          {gid: hollow_cell(src, kind) for gid, src in code_answers.items()}))
    for entry in banks.hollow:
        found.append(Case("hollow", entry.name, entry.component, {cell_for(entry): entry.source}, entry=entry))
    for entry in banks.mistakes:
        cell = cell_for(entry)
        source = entry.source if entry.source is not None else apply_edits(
            answers[cell], entry.edits, f"banks of {assignment}: mistake {entry.name}")
        found.append(Case("mistake", entry.name, entry.component, {cell: source}, entry=entry))
    for entry in banks.alternatives:
        found.append(Case("alternative", entry.name, entry.component, {cell_for(entry): entry.source}, entry=entry))
    return found


# --- grading ---------------------------------------------------------------------------------

def _grade_case(task):
    """Runs in a judge process: (report, raw results, seconds) for one notebook."""
    from .judge import grade_detailed
    notebook, assignment, device, root = task
    start = time.monotonic()
    report, results = grade_detailed(notebook, assignment, device=device, root=root)
    return report, results, time.monotonic() - start


def run(assignment: str, root: Path | None = None, jobs: int = 1, device: str = "cpu",
        progress: bool = True, banks: Banks | None = None, only: set[str] | None = None) -> Audit:
    """Audit one assignment. `banks` replaces the assignment's own (tests);
    `only` keeps the cases of these kinds."""
    from .classroom import judge_in_pool
    from .judge import resolve_device
    root = root or course_root()
    banks = banks or Banks.load(assignment)
    device = resolve_device(device)
    start = time.monotonic()
    static = static_checks(assignment, banks, root) if only is None else []
    todo = [c for c in cases(assignment, banks, root) if only is None or c.kind in only]
    with tempfile.TemporaryDirectory(prefix=f"audit-{assignment}-") as tmp:
        tasks = []
        for i, case in enumerate(todo):
            path = Path(tmp) / f"case-{i:03d}.ipynb"
            nbformat.write(submissions.build(assignment, root, replace=case.replace, base=case.base), path)
            tasks.append((path, assignment, device, root))
        graded = judge_in_pool(_grade_case, tasks, assignment, device, jobs, desc=f"auditing {assignment}",
                               progress=progress)
    rows = []
    for case, (report, results, seconds) in zip(todo, graded):
        rows.extend(judge_case(case, report, results, seconds, banks))
    return Audit(assignment, rows, time.monotonic() - start, banks, static)


# --- what each notebook must score ---------------------------------------------------------------

def judge_case(case: Case, report: dict, results: list[dict], seconds: float, banks: Banks) -> list[Row]:
    comps = {c["grade_id"]: c for c in report["components"]}
    problems = [e for e in report.get("errors", []) if "need a GPU" not in e]

    def row(component, score, max_score, issues, caught=()):
        return Row(case.kind, case.name, component, score, max_score, round(seconds, 2), list(caught), issues)

    if case.kind in ("solution", "alternative"):
        lost = {g: c for g, c in comps.items() if c["score"] < c["max_score"]}
        issues = [f"{g} scored {_pts(c)}: failed {_failed_tests(results, g)}" for g, c in lost.items()]
        issues += [f"grader note: {e}" for e in problems]
        if case.kind == "solution":
            rows = []
            for g, c in comps.items():
                graded = sum(r["component"] == g and r["outcome"] != "not_graded" for r in results)
                thin = [f"only {graded} hidden tests grade {g}; a component needs at least {MIN_TESTS}"] \
                    if graded < MIN_TESTS else []
                rows.append(row(g, c["score"], c["max_score"],
                                [i for i in issues if i.startswith(g) or "note" in i] + thin))
                rows[-1].tests = graded
            return rows
        return [row(case.component, report["score"], report["max_score"], issues)]

    if case.component == ALL:  # the release and generated hollow answers: nothing at all
        earned = {g: c for g, c in comps.items() if c["score"] > 0}
        issues = [f"{g} earned {_pts(c)}: passed {_passed_tests(results, g)}" for g, c in earned.items()]
        if case.kind == "release":
            passed = [r["name"] for r in results if r["outcome"] == "passed"]
            issues += [f"tests pass on the untouched release: {', '.join(passed[:5])}"] if passed and not issues else []
        return [row(ALL, report["score"], report["max_score"], issues)]

    own = comps.get(case.component)
    if own is None:
        return [row(case.component, 0, 0, [f"the release has no component {case.component}"])]
    issues = []
    for gid, comp in comps.items():
        if gid not in banks.affected_by(case.component) and comp["score"] < comp["max_score"]:
            issues.append(f"also cost {gid} {comp['max_score'] - comp['score']:g} points (failed "
                          f"{_failed_tests(results, gid)}), which does not depend on {case.component}")
    caught = _catchers(results, case.component)
    if case.kind == "hollow":
        if own["score"] > 0:
            issues.insert(0, f"earned {_pts(own)}: passed {_passed_tests(results, case.component)}")
        elif GATE not in caught:
            issues.insert(0, f"scored 0 but its gate let it through (caught by {', '.join(caught)})")
        return [row(case.component, own["score"], own["max_score"], issues, caught)]

    mistake = case.entry
    if own["score"] >= own["max_score"]:
        issues.insert(0, f"went unnoticed: {case.component} kept {_pts(own)}")
    elif not any(_matches(expected, caught) for expected in mistake.caught_by):
        timeouts = [r["test"] for r in results if r["component"] == case.component and r["outcome"] == "timeout"]
        by = ", ".join(caught) or ("only timeouts: " + ", ".join(sorted(set(timeouts))))
        issues.insert(0, f"caught by {by}, not by {' or '.join(mistake.caught_by)} as its bank says")
    return [row(case.component, own["score"], own["max_score"], issues, caught)]


def _catchers(results: list[dict], component: str) -> list[str]:
    """What failed the component: GATE, and the tests that failed on their own checks."""
    found = []
    for r in results:
        if r["component"] != component or r["outcome"] not in ("failed", "error"):
            continue
        name = GATE if r.get("gate") else r["name"]
        if name not in found:
            found.append(name)
    return found


def _matches(expected: str, caught: list[str]) -> bool:
    return any(c == expected or c.startswith(expected + "[") for c in caught)


def _failed_tests(results, component) -> str:
    names = [r["name"] for r in results if r["component"] == component and r["outcome"] not in ("passed", "not_graded")]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "") or "nothing"


def _passed_tests(results, component) -> str:
    names = [r["name"] for r in results if r["component"] == component and r["outcome"] == "passed"]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "") or "nothing"


def _pts(comp: dict) -> str:
    return f"{comp['score']:g}/{comp['max_score']:g}"


# --- what can be checked without grading ---------------------------------------------------------

@dataclass
class SuiteTest:
    name: str
    component: str | None
    quotes: tuple[str, ...]


def suite_modules(assignment: str) -> list:
    """The hidden suite's test modules, imported here (trusted code)."""
    import importlib.util
    modules = []
    for path in sorted(suite_dir(assignment).glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"suite_{assignment}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def suite_tests(modules) -> list[SuiteTest]:
    found = []
    for module in modules:
        module_marks = getattr(module, "pytestmark", [])
        module_marks = module_marks if isinstance(module_marks, list) else [module_marks]
        for name, fn in vars(module).items():
            if not (name.startswith("test_") and callable(fn)):
                continue
            # A test's own marks come first: as pytest's get_closest_marker, they win over the module's.
            marks = list(getattr(fn, "pytestmark", [])) + [getattr(m, "mark", m) for m in module_marks]
            component = next((m.args[0] for m in marks if m.name == "component"), None)
            quotes = tuple(q for m in marks if m.name == "spec" for q in m.args)
            found.append(SuiteTest(name, component, quotes))
    return found


def spec_texts(release) -> dict[str, str]:
    """What the student has been told by each component's test cell: the notebook's
    Markdown up to it, normalised as `spec` quotes are."""
    from .suite import normal_text
    texts, seen = {}, []
    for cell in release.cells:
        if cell.cell_type == "markdown":
            seen.append(cell.source)
        meta = _meta(cell)
        if meta.get("grade") and cell.cell_type == "code":
            texts[meta["grade_id"]] = normal_text("\n".join(seen))
    return texts


def static_checks(assignment: str, banks: Banks, root: Path | None = None) -> list[str]:
    """Problems found by reading the suite, its banks and suite.toml (one line each)."""
    from .suite import gates_in, normal_text
    release = read_notebook(release_notebook(assignment, root))
    components = [c.grade_id for c in components_of(release)]
    modules = suite_modules(assignment)
    tests = suite_tests(modules)
    names = {t.name for t in tests}
    problems = check_suite_toml(assignment, components)

    gated = set().union(*(gates_in(m) for m in modules)) if modules else set()
    problems += [f"component {c} has no gate (@gate in its suite)" for c in components if c not in gated]

    texts = spec_texts(release)
    for t in tests:
        if t.component not in components:
            problems.append(f"{t.name}: no component of the release (mark it with pytest.mark.component)")
        elif not t.quotes:
            problems.append(f"{t.name} ({t.component}): names no sentence of the spec it grades (@spec)")
        for quote in t.quotes:
            if t.component in texts and normal_text(quote) not in texts[t.component]:
                problems.append(f"{t.name} ({t.component}): the spec does not say {quote!r}")

    for c in components:
        mistakes = [m for m in banks.mistakes if m.component == c]
        if len(mistakes) < 3:
            problems.append(f"banks: {c} has {len(mistakes)} mistakes; every component needs at least 3")
        if not any(a.component == c for a in banks.alternatives):
            problems.append(f"banks: {c} has no correct alternative; every component needs at least 1")
    for entry in [*banks.mistakes, *banks.alternatives, *banks.hollow]:
        if entry.component not in components:
            problems.append(f"banks: {entry.name} names component {entry.component}, which the release lacks")
    for m in banks.mistakes:
        for expected in m.caught_by:
            if expected != GATE and expected.partition("[")[0] not in names:
                problems.append(f"banks: mistake {m.name} expects {expected}, which the suite does not have")
    for c, needs in banks.depends.items():
        for name in {c, *needs} - set(components):
            problems.append(f"banks: DEPENDS names {name}, which the release lacks")
    for c, pairs in banks.roles.items():
        for pair in pairs:
            if not any(m.component == c and set(m.swaps or ()) == set(pair) for m in banks.mistakes):
                problems.append(f"banks: {c} declares roles {pair[0]} and {pair[1]} but no mistake swaps them")
    return problems


def check_suite_toml(assignment: str, components: list[str]) -> list[str]:
    import tomllib
    from dataclasses import fields

    from .sandbox import Limits
    from .worker import _resolve
    path = suite_dir(assignment) / "suite.toml"
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        return [f"suite.toml is not valid TOML: {err}"]
    problems = [f"suite.toml: unknown table [{k}] (known: limits, forbidden)" for k in data if k not in ("limits", "forbidden")]
    known = {f.name for f in fields(Limits)}
    problems += [f"suite.toml: unknown limit {k} (known: {', '.join(sorted(known))})"
                 for k in data.get("limits", {}) if k not in known]
    forbidden = data.get("forbidden", {})
    apis = list(forbidden.get("apis", []))
    for gid, names in forbidden.get("components", {}).items():
        if gid not in components:
            problems.append(f"suite.toml: [forbidden.components] names {gid}, which the release lacks")
        apis += names
    problems += [f"suite.toml: forbidden API {api} does not exist in this PyTorch" for api in apis if _resolve(api) is None]
    return problems


# --- output ----------------------------------------------------------------------------------------

def table(audit: Audit) -> str:
    head = ("kind", "name", "component", "score", "time", "result")
    lines = []
    for r in audit.rows:
        result = "ok" if r.ok else "FAIL"
        if r.ok and r.kind == "mistake":
            entry = next(e for e in audit.banks.mistakes if e.name == r.name and e.component == r.component)
            named = [c for c in r.caught_by if any(_matches(x, [c]) for x in entry.caught_by)]
            result += f": {named[0]}" + (f" and {len(r.caught_by) - 1} more" if len(r.caught_by) > 1 else "")
        lines.append((r.kind, r.name, r.component, f"{r.score:g}/{r.max_score:g}", f"{r.seconds:.1f}s", result))
    widths = [min(max(len(str(x[i])) for x in [head, *lines]), 60) for i in range(len(head))]
    fmt = lambda cells: "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)]
    notebooks = len({(r.kind, r.name) for r in audit.rows})
    failures = audit.failures
    out.append(f"{audit.assignment}: {notebooks} notebooks graded in {audit.seconds:.1f} s; "
               + (f"{len(failures)} FAILED" if failures else "all as expected"))
    out += [f"FAIL {f}" for f in failures]
    return "\n".join(out)


def as_json(audits: list[Audit]) -> str:
    return json.dumps([a.to_json() for a in audits], indent=1)
