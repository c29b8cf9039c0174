"""Turn a submitted notebook into what the judge runs, checked against the release.

The release (assignments/aNN) is the contract: its locked cells must come back
unchanged (nbgrader's checksums), its answer cells are looked up by grade id,
and the cells run are, in the release's order, the release's own setup cells and
the student's answer cells. Whatever else a student adds to the notebook is not
run: helpers belong in answer cells.
"""
import ast
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.utils import compute_checksum

from .notebook import read_notebook
from .paths import CourseError, assignments_dir, solutions_dir


@dataclass
class Component:
    grade_id: str           # the test cell's grade id: what the gradebook scores
    name: str               # what the student builds, e.g. "scaled_dot_product_attention"
    points: float
    answer_cells: list[str] = field(default_factory=list)
    zero_reason: str | None = None      # set when the component cannot earn points
    forbidden_used: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    assignment: str
    cells: list[tuple[str, str]]        # (cell id, source) in run order
    components: list[Component]
    messages: list[str] = field(default_factory=list)
    fatal: str | None = None            # when nothing can be graded at all


def _meta(cell) -> dict:
    """A cell's nbgrader metadata, or {} when it is missing or malformed (a student
    can put anything there; a bad value must cost that cell, never the grader)."""
    meta = cell.get("metadata")
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    if not isinstance(meta, dict):
        return {}
    if "grade_id" in meta and not isinstance(meta["grade_id"], str):
        return {}
    return meta


def _defined_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]


def _checksum(cell) -> str | None:
    try:
        return compute_checksum(cell)
    except Exception:  # noqa: BLE001 - malformed metadata cannot match the release anyway
        return None


def release_notebook(assignment: str, root: Path | None = None) -> Path:
    folder = assignments_dir(root) / assignment
    found = sorted(folder.glob("*.ipynb"))
    if not found:
        raise CourseError(f"assignments/{assignment}/ holds no released notebook: run `course release {assignment}`")
    return found[0]


def components_of(release: nbformat.NotebookNode) -> list[Component]:
    """Graded test cells, each with the answer cells since the previous one."""
    comps, pending = [], []
    for cell in release.cells:
        meta = _meta(cell)
        if meta.get("solution"):
            pending.append(cell)
        if meta.get("grade") and cell.cell_type == "code":
            names = [n for c in pending for n in _defined_names(c.source)]
            comps.append(Component(meta["grade_id"], names[0] if names else meta["grade_id"],
                                   float(meta.get("points", 0)), [_meta(c)["grade_id"] for c in pending]))
            pending = []
    return comps


# Ways to dig a wrapped original out of a tripwire; no answer needs them.
INTROSPECTION = {"__wrapped__", "__closure__", "cell_contents", "__globals__", "__code__", "__func__",
                 "get_referents", "get_referrers", "__builtins__"}


# Names the notebooks' setup cells import; an answer cell uses them without importing.
SETUP_ALIASES = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional", "np": "numpy", "math": "math"}


def _is_method(dotted: str) -> bool:
    """torch.Tensor.softmax is a method: any `x.softmax(...)` may reach it. A module's
    function (torch.autograd.grad) is reached only through that module."""
    from .worker import _resolve  # imports torch: only the judge calls this
    return isinstance(_resolve(dotted.rpartition(".")[0]), type)


def forbidden_uses(source: str, forbidden: list[str]) -> list[str]:
    """Forbidden APIs named in a cell: reached through a module (`F.softmax`,
    `torch.nn.functional.softmax`, an import of it, with any alias), called as a
    method when it is one (`x.softmax()` for torch.Tensor.softmax), or named in a
    string (`getattr(F, "softmax")`). A student's own `.grad` or function of the
    same name is not flagged; what this misses, the worker's tripwires catch when
    it runs."""
    if not forbidden:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    aliases = dict(SETUP_ALIASES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                    alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    names = set(forbidden)
    methods = {}
    for dotted in forbidden:  # the first spelling listed is the one reported
        if _is_method(dotted):
            methods.setdefault(dotted.rpartition(".")[2], dotted)
    distinctive = {d.rpartition(".")[2]: d for d in forbidden if "_" in d.rpartition(".")[2]
                   and len(d.rpartition(".")[2]) >= 12}

    def dotted_name(node):
        if isinstance(node, ast.Name):
            return aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = dotted_name(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in INTROSPECTION:
            found.add(f"introspection ({node.attr}), which could reach a forbidden API")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2:
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                found.add("getattr with a computed name, which could reach a forbidden API")
            elif f"{dotted_name(node.args[0])}.{name.value}" in names:
                found.add(f"{dotted_name(node.args[0])}.{name.value}")
            elif name.value in methods:
                found.add(methods[name.value])
        if isinstance(node, (ast.Attribute, ast.Name)):
            full = dotted_name(node)
            if full in names:
                found.add(full)
            elif isinstance(node, ast.Attribute) and node.attr in methods:
                found.add(methods[node.attr])
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in distinctive:
            found.add(distinctive[node.value])
    return sorted(found)


def prepare(submitted: Path, assignment: str, forbidden_for=None, root: Path | None = None) -> Prepared:
    """`forbidden_for(test grade id)` lists the APIs that component's answers may not name."""
    release = read_notebook(release_notebook(assignment, root))
    components = components_of(release)
    try:
        nb = read_notebook(submitted)
    except CourseError as err:
        reason = str(err).partition("(")[2].partition(")")[0] or "unreadable"
        return Prepared(assignment, [], components,
                        fatal=f"the notebook file could not be read ({reason}): download your notebook again "
                              "from Jupyter (File > Download) and resubmit it")

    by_id = {}
    for cell in (c for c in nb.cells if isinstance(c, dict) and isinstance(c.get("source", ""), str)):
        gid = _meta(cell).get("grade_id")
        if gid and gid not in by_id:
            by_id[gid] = cell
    release_ids = [_meta(c)["grade_id"] for c in release.cells if _meta(c).get("grade_id")]
    if not any(gid in by_id for gid in release_ids):
        return Prepared(assignment, [], components,
                        fatal=f"this notebook is not assignment {assignment}: none of its graded cells are in it "
                              "(did you submit another assignment's notebook?)")

    messages, cells = [], []
    test_owner = {c.grade_id: c for c in components}
    answer_owner = {a: c for c in components for a in c.answer_cells}
    for rel in release.cells:
        meta = _meta(rel)
        gid = meta.get("grade_id")
        if not gid:
            continue
        sub = by_id.get(gid)
        if meta.get("locked"):
            intact = sub is not None and _checksum(sub) == meta.get("checksum")
            if not intact:
                what = "deleted" if sub is None else "modified"
                if gid in test_owner:
                    test_owner[gid].zero_reason = f"the locked test cell '{gid}' was {what}: it must stay as released"
                    messages.append(f"Locked test cell '{gid}' was {what}; its component scores 0.")
                else:
                    messages.append(f"Locked cell '{gid}' was {what}; the released version was used instead.")
            if rel.cell_type == "code" and not meta.get("grade"):
                cells.append((gid, rel.source))  # setup code: always the release's own
        elif meta.get("solution") and rel.cell_type == "code":
            if sub is None or sub.cell_type != "code":
                messages.append(f"Answer cell '{gid}' is missing from the notebook.")
                continue
            cells.append((gid, sub.source))
            owner = answer_owner.get(gid)
            if forbidden_for and owner is not None:
                owner.forbidden_used += forbidden_uses(sub.source, forbidden_for(owner.grade_id))
    return Prepared(assignment, cells, components, messages)


def reference_cells(assignment: str, root: Path | None = None) -> list[tuple[str, str]]:
    """The solution notebook's setup and answer cells: the reference implementation."""
    folder = solutions_dir(root) / assignment
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        raise CourseError(f"solutions/{assignment}/ holds no notebook: the reference cannot be built")
    nb = read_notebook(notebooks[0])
    cells = []
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type == "code" and meta.get("grade_id") and not meta.get("grade"):
            cells.append((meta["grade_id"], cell.source))
    return cells
