"""Adversarial submissions: a student's notebook attacks the grader, and loses.

Each case is a notebook (usually one answer cell replaced) graded the way the course
grades; the judge must finish with a report in which the attack earned nothing:

* the attacked component scores exactly what an honest notebook with the same
  shortcoming scores ("like"): the release's stub (the function exists but every call
  fails), an empty answer cell (nothing defined), or the same wrong code without the
  attack; and that baseline is below full marks, so the comparison means something;
* every other component scores what the reference solution scores, at least one of
  them above 0 (the judge carried on);
* the report says what went wrong (a message naming the error or the cell).

Cases: lying objects and tensor subclasses; monkeypatched torch / numpy / pytest /
builtins / course modules; reading hidden tests and solutions; writing the gradebook,
course files and the host's /tmp; forged reports on stdout/stderr; sys.exit and
os._exit; killing the parent, the process group, pid 1; infinite loops and ignored
signals; memory bombs; fork bombs; output floods; huge and deeply nested return
values; network access; edited / deleted locked cells; syntax errors, exceptions and
missing names; wrong shapes, dtypes and NaN; corrupted notebooks and another
assignment's notebook; a whole class with attackers next to honest students; and
determinism. Sandbox refusals that need no full grade (fork, sockets, signals,
ptrace, files) are checked directly, one probe each, in a single worker.

Weaknesses this corpus found (pidfd signals, files shared between students, the
fallback mode wiping the host's /tmp, crafted metadata, forged reply structures,
getattr/__wrapped__ bypasses of forbidden APIs) are fixed; their tests stay here.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from autograder import extract
from autograder.judge import grade, worker_factory
from autograder.notebook import read_notebook
from autograder.sandbox import Limits, bubblewrap
from autograder.student import RemoteTransport, Student
from conftest import ROOT, course, run
from autograder.student import StudentError
from submissions import answer_source, submission

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("adversarial")]

ASSIGNMENT = "a03"
HAS_BWRAP = bubblewrap() is not None
needs_fs_isolation = pytest.mark.skipif(
    not HAS_BWRAP, reason="bubblewrap is unavailable: the fallback mode warns that filesystem isolation "
                          "is reduced, so reading and writing course files is not refused there")

HANG = {"call_seconds": 3}      # limits for cases that hang: short, so the file stays fast
HANG_BUDGET_S = 60              # a hanging notebook must still be graded within this

RELEASE = read_notebook(extract.release_notebook(ASSIGNMENT, ROOT))
COMPONENTS = extract.components_of(RELEASE)
OWNER = {cell: c.grade_id for c in COMPONENTS for cell in c.answer_cells}   # answer cell -> component
# SelfAttention calls the student's own scaled_dot_product_attention and causal_mask.
DEPENDENTS = {"answer-sdpa": {"test-self"}, "answer-causal-mask": {"test-self"}}
SUITE_FILES = sorted((ROOT / "autograder" / "suites" / ASSIGNMENT).glob("test_*.py"))
SOLUTION_NB = next((ROOT / "solutions" / ASSIGNMENT).glob("*.ipynb"))
SECRETS = [*SUITE_FILES, SOLUTION_NB, ROOT / "autograder" / "suites" / ASSIGNMENT / "suite.toml"]


def release_source(grade_id: str) -> str:
    return next(c.source for c in RELEASE.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


SDPA = answer_source("answer-sdpa")
PADDING = answer_source("answer-padding-mask")
GONE = "# (this answer cell was left empty)\n"
# Zeros of the right shapes: what the lying tensor subclasses below hold underneath.
ZERO_SDPA = """
import torch
def scaled_dot_product_attention(q, k, v, mask=None):
    return torch.zeros(*q.shape[:-1], v.shape[-1]), torch.zeros(*q.shape[:-1], k.shape[-2])
"""
# Wrong but well-formed: right shapes and dtypes, uniform weights, zero output.
WRONG_SDPA = '''
import torch
def scaled_dot_product_attention(q, k, v, mask=None):
    w = torch.full((*q.shape[:-1], k.shape[-2]), 1.0 / k.shape[-2], dtype=q.dtype, device=q.device)
    return torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device), w
'''


def pm_function(body: str, prelude: str = "") -> str:
    """An answer-padding-mask cell whose padding_mask runs `body`."""
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    return f"import os, sys, signal, time, torch\n{prelude}\ndef padding_mask(lengths, max_len):\n{indented}\n"


def sdpa_function(body: str, prelude: str = "") -> str:
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    return (f"import math, os, sys, torch\n{prelude}\n"
            f"def scaled_dot_product_attention(q, k, v, mask=None):\n{indented}\n")


# --- grading helpers --------------------------------------------------------------------

def scores(report: dict) -> dict:
    return {c["grade_id"]: c["score"] for c in report["components"]}


def text(report: dict) -> str:
    return json.dumps(report)


def summary(report: dict) -> str:
    """What a failing assertion prints: scores, errors and the first failures."""
    lines = [f"score {report['score']} / {report['max_score']}"]
    for comp in report["components"]:
        bad = [t["message"][:160] for t in comp["tests"] if t["outcome"] not in ("passed", "not_graded")]
        lines.append(f"  {comp['grade_id']}: {comp['score']} ({len(bad)} not passed) {bad[:2]}")
    lines += [f"  error: {e[:200]}" for e in report.get("errors", [])]
    return "\n".join(lines)


def grade_nb(path: Path, limits: dict | None = None, root: Path | None = None) -> tuple[dict, float]:
    start = time.monotonic()
    report = grade(path, ASSIGNMENT, device="cpu", limits=limits, root=root)
    return report, time.monotonic() - start


class Baselines:
    """Reports of honest notebooks, graded once: the solution, and the solution with one
    answer cell replaced by its release stub, by nothing, or by given code."""

    def __init__(self, folder: Path):
        self.folder, self.cache = folder, {}
        self.full_report = self.report({})
        self.full = scores(self.full_report)

    def report(self, replace: dict) -> dict:
        key = json.dumps(replace, sort_keys=True)
        if key not in self.cache:
            nb = submission(self.folder, replace=replace, name=f"baseline-{len(self.cache)}.ipynb")
            self.cache[key] = grade_nb(nb)[0]
        return self.cache[key]

    def like(self, cell: str, kind: str) -> dict:
        source = {"stub": release_source(cell), "gone": GONE}.get(kind, kind)
        return scores(self.report({cell: source}))


@pytest.fixture(scope="module")
def baselines(tmp_path_factory) -> Baselines:
    base = Baselines(tmp_path_factory.mktemp("baselines"))
    assert base.full_report["max_score"] == sum(c.points for c in COMPONENTS)
    assert any(v > 0 for v in base.full.values()), f"the solution scores nothing:\n{summary(base.full_report)}"
    return base


REPORTS = {}   # case id -> report, for the tests that look at a case again


def check_against(report: dict, base: Baselines, cell: str, like, says=(), case_id="", collateral=False):
    """The attack earned nothing (see the module docstring) and the report says why.
    collateral: the attack also broke the student's other answers (it changed the worker's
    torch for everything that runs after it): those may lose points, never gain any."""
    got = scores(report)
    assert set(got) == {c.grade_id for c in COMPONENTS}, summary(report)
    assert report["max_score"] == base.full_report["max_score"], "the maximum score changed"
    owner = OWNER[cell]
    alternatives = like if isinstance(like, tuple) else (like,)
    if alternatives == (None,):  # no honest twin: points lost where the mistake is, nowhere else
        assert got[owner] < base.full[owner], f"{case_id}: the attacked component kept full marks\n{summary(report)}"
        for gid, full in base.full.items():
            if gid != owner:
                limit = full if gid in DEPENDENTS.get(cell, ()) else None
                assert (got[gid] <= full) if limit is not None else (got[gid] == full), (
                    f"{case_id}: {gid} should keep {full}\n{summary(report)}")
    else:
        wanted = [base.full if kind == "full" else base.like(cell, kind) for kind in alternatives]
        if collateral:
            assert got[owner] <= max(w[owner] for w in wanted), f"{case_id}: {owner}\n{summary(report)}"
            assert all(got[g] <= base.full[g] for g in got), summary(report)
            wanted = [got]
        assert got in wanted, (f"{case_id}: scores {got}; an honest notebook with the same shortcoming scores "
                               f"{' or '.join(map(str, wanted))}\n{summary(report)}")
        if alternatives != ("full",):
            assert all(w[owner] < base.full[owner] for w in wanted), (
                f"{case_id}: the baseline {alternatives} of {owner} already has full marks: the case proves nothing")
    untouched = [g for g in base.full if g != owner and g not in DEPENDENTS.get(cell, ())]
    kept = [g for g in untouched if got[g] == base.full[g] > 0]
    assert kept or collateral, f"{case_id}: no untouched component kept its marks\n{summary(report)}"
    blob = text(report)
    for expected in says:
        options = expected if isinstance(expected, tuple) else (expected,)
        assert any(o in blob for o in options), f"{case_id}: the report should mention {options}\n{summary(report)}"


# --- the cases ----------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    cell: str                       # the answer cell holding the attack
    source: str
    like: object = "stub"           # "stub" | "gone" | "full" | honest source | None | a tuple of these
    says: tuple = ()                # each item (or one of a tuple of items) must be in the report
    limits: dict | None = None
    fs: bool = False                # needs filesystem isolation
    collateral: bool = False        # the attack breaks the student's other answers too (see check_against)
    marks: list = field(default_factory=list)

    def param(self):
        marks = list(self.marks) + ([needs_fs_isolation] if self.fs else [])
        return pytest.param(self, id=self.id, marks=marks)


LIAR = '''
class Liar:
    """Equal to everything, true, of any shape, any dtype, any length."""
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __len__(self): return 0
    def __iter__(self): return iter(())
    def __getattr__(self, name): return self
    def __call__(self, *args, **kwargs): return self
    def __getitem__(self, key): return self
    def __float__(self): return 0.0
    def __repr__(self): return "tensor(ok)"
    __hash__ = object.__hash__
'''

LYING_TENSOR = '''
import torch
class Lying(torch.Tensor):
    def __eq__(self, other): return torch.ones_like(torch.Tensor(self), dtype=torch.bool)
    def __bool__(self): return True
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.equal, torch.isclose):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
'''

MONKEYPATCH_TORCH = '''
import numpy, numpy.testing, pytest, torch, unittest
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *r, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.__eq__ = lambda self, other: torch.ones(self.shape, dtype=torch.bool)
torch.Tensor.equal = lambda self, other: True
torch.isnan = lambda x: torch.zeros(torch.as_tensor(x).shape, dtype=torch.bool)
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
pytest.approx = lambda expected, *a, **k: expected
unittest.TestCase.assertEqual = lambda *a, **k: None
'''

FAKE_COURSE_MODULES = '''
import sys, types
try:
    import autograder.suite  # the course's package is not in the sandbox
except ImportError as err:
    import_error = repr(err)
fake = types.ModuleType("autograder")
fake.suite = types.ModuleType("autograder.suite")
fake.suite.expect = fake.suite.assert_close = fake.suite.assert_tensor = lambda *a, **k: None
fake.judge = types.ModuleType("autograder.judge")
fake.judge.score = lambda *a, **k: {"score": 10.0}
for name, module in {"autograder": fake, "autograder.suite": fake.suite, "autograder.judge": fake.judge,
                     "pytest": types.ModuleType("pytest")}.items():
    sys.modules[name] = module
'''

READ_SECRETS = "\n".join(f"open({str(p)!r}).read()" for p in SECRETS) + "\n"
HOST_TMP_MARKER = Path("/tmp") / f"adversarial-{uuid.uuid4().hex}"

CASES = [
    # 1-2: values that lie about what they are
    Case("object-equal-to-everything", "answer-sdpa",
         LIAR + sdpa_function("return Liar(), Liar()"), "stub", ("should be a tensor",)),
    Case("tensor-subclass-lying-to-allclose-and-eq", "answer-sdpa",
         sdpa_function("return (torch.zeros(*q.shape[:-1], v.shape[-1]).as_subclass(Lying),\n"
                       "        torch.zeros(*q.shape[:-1], k.shape[-2]).as_subclass(Lying))", LYING_TENSOR),
         "stub", ("should be a tensor",)),
    Case("tensor-subclass-installed-as-torch.Tensor", "answer-sdpa",
         sdpa_function("return (torch.zeros(*q.shape[:-1], v.shape[-1]).as_subclass(Lying),\n"
                       "        torch.zeros(*q.shape[:-1], k.shape[-2]).as_subclass(Lying))",
                       LYING_TENSOR + "torch.Tensor = Lying  # fools the worker's own type checks\n"),
         ZERO_SDPA, collateral=True),
    # 3: monkeypatching libraries and the course's own modules next to a wrong answer
    Case("monkeypatch-torch-numpy-pytest", "answer-sdpa", MONKEYPATCH_TORCH + WRONG_SDPA, WRONG_SDPA,
         (("has wrong values", "is not the values mixed by its weights"),)),
    Case("monkeypatch-builtins", "answer-sdpa",
         "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.len = lambda *a: 0\n"
         "builtins.AssertionError = type('Nothing', (Exception,), {})\n" + WRONG_SDPA,
         ("gone", WRONG_SDPA), ("answer-sdpa",)),
    Case("fake-course-modules-in-sys.modules", "answer-sdpa", FAKE_COURSE_MODULES + WRONG_SDPA, WRONG_SDPA,
         (("has wrong values", "is not the values mixed by its weights"),)),
    Case("import-autograder", "answer-sdpa", "import autograder.judge\n" + SDPA, "gone",
         ("ModuleNotFoundError", "answer-sdpa")),
    # 4-5: the course's files are not there to read or to write
    Case("read-hidden-suite-and-solution", "answer-padding-mask", "import os\n" + READ_SECRETS + PADDING,
         "gone", (("FileNotFoundError", "PermissionError"), "answer-padding-mask"), fs=True),
    Case("overwrite-hidden-suite", "answer-padding-mask",
         "".join(f"open({str(p)!r}, 'a').write('\\n# adversarial\\n')\n" for p in SUITE_FILES) + PADDING,
         "gone", (("FileNotFoundError", "PermissionError", "Read-only file system"),), fs=True),
    # 7: exits
    Case("sys.exit-at-top-level", "answer-padding-mask", "import sys\nsys.exit(0)\n" + PADDING, "gone",
         ("SystemExit",)),
    Case("os._exit-at-top-level", "answer-padding-mask", "import os\nos._exit(0)\n" + PADDING, "gone",
         ("answer-padding-mask", "exited with status 0")),
    Case("sys.exit-inside-function", "answer-padding-mask", pm_function("sys.exit(0)"), "stub", ("SystemExit",)),
    Case("os._exit-inside-function", "answer-padding-mask", pm_function("os._exit(0)"), "stub",
         ("ended the grading process",)),
    # 8: killing others
    Case("sigkill-the-parent", "answer-padding-mask",
         pm_function("os.kill(os.getppid(), signal.SIGKILL)\nreturn torch.ones(len(lengths), max_len, dtype=torch.bool)"),
         "stub", ("PermissionError",)),
    Case("killpg-own-group-at-top-level", "answer-padding-mask",
         "import os, signal\nos.killpg(0, signal.SIGKILL)\n" + PADDING, "gone", ("SIGKILL",)),
    Case("kill-9-pid-1", "answer-padding-mask", "import os, signal\nos.kill(1, signal.SIGKILL)\n" + PADDING,
         "gone", ("PermissionError",)),
    # 9-10: hangs
    Case("infinite-loop-inside-function", "answer-padding-mask", pm_function("while True:\n    pass"), "stub",
         ("did not finish in time",), limits=HANG),
    Case("infinite-loop-at-top-level", "answer-padding-mask", "while True:\n    pass\n" + PADDING, "gone",
         ("ran past its time limit",), limits=HANG),
    Case("ignores-sigterm-and-sigint", "answer-padding-mask", pm_function(
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGALRM})\n"
        "while True:\n    try:\n        time.sleep(60)\n    except BaseException:\n        pass"),
         "stub", ("did not finish in time",), limits=HANG),
    # 11: memory
    Case("allocates-a-50-GB-tensor", "answer-padding-mask",
         pm_function("x = torch.ones(50 * 2**30 // 4)\nreturn x"), "stub", ("allocate",)),
    Case("list-that-grows-forever", "answer-padding-mask",
         "keep = []\nwhile True:\n    keep.append(bytearray(2**27))\n" + PADDING, "gone",
         (("MemoryError", "time limit", "SIGKILL"),), limits={"call_seconds": 4, "memory_bytes": 3 * 2**30}),
    # 12: processes
    Case("fork-bomb", "answer-padding-mask", "import os\nwhile True:\n    os.fork()\n" + PADDING, "gone",
         ("PermissionError",)),
    # 14: return values the judge should not have to take in
    Case("returns-a-320-MB-tensor", "answer-padding-mask", pm_function(
        "if not calls:\n    calls.append(1)\n    return torch.zeros(80 * 2**20)\nraise ValueError('no more')",
        "calls = []"), "stub", ("over the limit",)),
    Case("returns-a-deeply-nested-list", "answer-padding-mask", pm_function(
        "x = []\nfor _ in range(100_000):\n    x = [x]\nreturn x"), "stub", ("RecursionError",)),
    Case("returns-a-shared-reference-bomb", "answer-padding-mask", pm_function(  # 2**40 leaves, 40 lists
        "x = []\nfor _ in range(40):\n    x = [x, x]\nreturn x"), "stub", ("did not finish in time",), limits=HANG),
    # 15: network
    Case("socket-to-an-external-ip", "answer-padding-mask",
         "import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=2)\n" + PADDING, "gone",
         ("PermissionError",)),
    Case("urllib-to-the-internet", "answer-padding-mask",
         "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)\n" + PADDING, "gone",
         ("URLError",)),
    # 17-19: broken answer cells
    Case("syntax-error", "answer-padding-mask", "def padding_mask(lengths, max_len)\n    return lengths\n",
         "gone", ("SyntaxError", "answer-padding-mask")),
    Case("syntax-error-in-sdpa-costs-selfattention-too", "answer-sdpa",
         "def scaled_dot_product_attention(q, k, v, mask=None)\n    return q, k\n", "gone",
         ("SyntaxError", "answer-sdpa")),
    Case("exception-at-top-level", "answer-padding-mask", "raise ValueError('boom at top level')\n" + PADDING,
         "gone", ("ValueError: boom at top level",)),
    Case("defines-nothing", "answer-padding-mask", "x = 1\n", "gone", ("padding_mask is not defined",)),
    Case("misspelled-name", "answer-padding-mask", PADDING.replace("def padding_mask", "def pading_mask"),
         "gone", ("padding_mask is not defined",)),
    Case("missing-class", "answer-additive", "import torch.nn as nn\nclass Additive(nn.Module):\n    pass\n",
         "gone", ("AdditiveAttention is not defined",)),
    # 20-21: wrong values of the right kind
    Case("wrong-shape", "answer-sdpa",
         SDPA.replace("return weights @ v, weights", "return (weights @ v).transpose(-2, -1), weights"), None,
         ("should have shape",)),
    Case("wrong-dtype", "answer-sdpa",
         SDPA.replace("return weights @ v, weights", "return (weights @ v).double(), weights.half()"), None,
         ("should keep dtype",)),
    Case("nan-output", "answer-sdpa",
         SDPA.replace("return weights @ v, weights", "return (weights @ v) * float('nan'), weights"), None,
         ("contains NaN",)),
]


def graded_case(case: Case, base: Baselines, tmp_path: Path) -> tuple[dict, float]:
    nb = submission(tmp_path, replace={case.cell: case.source}, name=f"{case.id}.ipynb")
    report, seconds = grade_nb(nb, case.limits)
    REPORTS[case.id] = report
    return report, seconds


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_attack_earns_nothing(case, baselines, tmp_path):
    report, seconds = graded_case(case, baselines, tmp_path)
    check_against(report, baselines, case.cell, case.like, case.says, case.id, case.collateral)
    assert seconds < HANG_BUDGET_S, f"{case.id}: grading took {seconds:.0f} s"


# --- cases that need more than a score --------------------------------------------------

def student_for(nb: Path, call_seconds: float = 10) -> Student:
    """The notebook's answer cells in a sandboxed worker, as the judge runs them."""
    prepared = extract.prepare(nb, ASSIGNMENT, [], ROOT)
    transport = RemoteTransport(prepared.cells, Limits(call_seconds=call_seconds), worker_factory("cpu"))
    return Student(transport)


def test_cuda_workers_start_with_their_memory_bounded():
    """Workers for --device cuda (checked here on CPU too, with no GPU files to
    mount): the sandbox mounts the GPU's files before it makes the root read-only,
    and memory is bounded by RLIMIT_DATA rather than address space, which the CUDA
    driver reserves by the tens of GiB. A memory bomb still fails."""
    import resource

    from autograder.sandbox import WorkerFactory
    source = ("import resource\n"
              "def memory_limits():\n"
              "    return [resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_DATA)[0]]\n"
              "def bomb():\n"
              "    return len(bytearray(3 * 2**30))\n")
    factory = WorkerFactory("cuda")
    try:
        student = Student(RemoteTransport([("cell", source)], Limits(memory_bytes=2**31), factory))
        assert student.memory_limits() == [resource.RLIM_INFINITY, 2**31]
        with pytest.raises(StudentError, match="MemoryError"):
            student.bomb()
        student.close()
    finally:
        factory.close()


def distinctive_lines(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if len(line) > 30][:20]


@needs_fs_isolation
def test_exfiltration_finds_nothing_secret(baselines, tmp_path):
    """A correct answer that also collects what it can read: the grade is unaffected,
    and what it collected holds none of the hidden tests or the solution."""
    leak = f'''
import glob, os
def _try(action):
    try:
        return action()
    except BaseException as err:
        return type(err).__name__
def leak():
    found = {{}}
    for path in {[str(p) for p in SECRETS]!r}:
        found[path] = _try(lambda: open(path).read())
    found["listdir /"] = _try(lambda: sorted(os.listdir("/")))
    found["listdir course"] = _try(lambda: sorted(os.listdir({str(ROOT)!r})))
    found["glob"] = _try(lambda: sorted(glob.glob("/*/*/*")))
    found["suites glob"] = _try(lambda: glob.glob("/**/suites/**", recursive=False))
    found["tmp"] = _try(lambda: sorted(os.listdir("/tmp")))
    found["parent environ"] = _try(lambda: open(f"/proc/{{os.getppid()}}/environ").read())
    found["parent cwd"] = _try(lambda: os.readlink(f"/proc/{{os.getppid()}}/cwd"))
    return repr(found)
'''
    nb = submission(tmp_path, replace={"answer-padding-mask": leak + PADDING}, name="exfiltrate.ipynb")
    report, _ = grade_nb(nb)
    check_against(report, baselines, "answer-padding-mask", "full", case_id="exfiltrate")
    student = student_for(nb)
    try:
        found = student.leak()
    finally:
        student.close()
    assert isinstance(found, str) and found.startswith("{"), found
    found_dict = eval(found)  # noqa: S307 - a repr of plain data from our own cell
    for path in SECRETS:
        assert found_dict[str(path)] in ("FileNotFoundError", "PermissionError"), f"{path} was readable"
    for path in SECRETS:
        for line in distinctive_lines(path):
            assert line not in found, f"the sandbox saw a line of {path.name}: {line!r}"
    listing = found_dict["listdir course"]
    assert listing in ("FileNotFoundError", "PermissionError") or set(listing) <= {".venv"}, listing
    for name in ("autograder", "solutions", "submitted", "gradebook.db", "nbgrader_config.py"):
        assert name not in str(found_dict["glob"]) + str(listing), f"{name} is visible in the sandbox"
    assert not any(name.startswith("pytest-of") for name in found_dict["tmp"]), "the host's /tmp is visible"
    assert found_dict["parent environ"] in ("PermissionError", "FileNotFoundError"), "the zygote's environment leaked"


@needs_fs_isolation
def test_writes_to_course_files_change_nothing(baselines, tmp_path):
    """A correct answer that first tries to write everywhere that matters: a class's
    gradebook, submissions and solutions, the course's gradebook, the hidden suite, the
    judge's code, the virtualenv (a .pth or sitecustomize the judge would import), the
    host's /tmp. Nothing changes on the host, and the grade is the solution's.

    (Inside the sandbox a write to an absolute course path may succeed: it lands in the
    sandbox's own scratch root, which bubblewrap makes up from a tmpfs.)"""
    klass = tmp_path / "course"
    for name in ("solutions", "assignments"):
        shutil.copytree(ROOT / name, klass / name)
    (klass / "submitted" / "ada" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(SOLUTION_NB, klass / "submitted" / "ada" / ASSIGNMENT / "a03.ipynb")
    (klass / "gradebook.db").write_bytes(b"SQLite format 3\x00" + bytes(100))
    site = Path(sysconfig.get_paths()["purelib"])
    marker = f"PWNED-{uuid.uuid4().hex}"
    # The repository's own files only get a comment appended, should the sandbox ever fail
    # open; the scratch class is fair game for truncation and deletion.
    append_only = [ROOT / "gradebook.db", *SUITE_FILES, ROOT / "autograder" / "judge.py",
                   site / "sitecustomize.py", site / "adversarial.pth", HOST_TMP_MARKER]
    destroy = [klass / "gradebook.db", klass / "submitted" / "ada" / ASSIGNMENT / "a03.ipynb",
               klass / "solutions" / ASSIGNMENT / "a03.ipynb"]
    attack = f'''
import os
for path in {[str(t) for t in append_only]!r}:
    try:
        open(path, "a").write("\\n# " + {marker!r} + "\\n")
    except OSError:
        pass
for path in {[str(t) for t in destroy]!r}:
    for action in (lambda: open(path, "w").write({marker!r}), lambda: os.unlink(path)):
        try:
            action()
        except OSError:
            pass
'''
    targets = append_only + destroy

    def fingerprint():
        files = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(klass.rglob("*")) if p.is_file()}
        return files, {t: t.exists() for t in targets}

    before = fingerprint()
    nb = submission(tmp_path, replace={"answer-padding-mask": attack + PADDING}, name="writer.ipynb")
    report, _ = grade_nb(nb)
    check_against(report, baselines, "answer-padding-mask", "full", case_id="writer")
    assert fingerprint() == before, "the class folder changed, or a file appeared or vanished"
    for target in targets:
        if target.is_file():
            assert marker not in target.read_text(errors="replace"), f"{target} was written to"
    assert not any(marker in p.read_text(errors="replace") for p in (ROOT / "autograder").rglob("*.py"))


# --- the command line: what the judge prints ------------------------------------------

FORGED = json.dumps({"assignment": ASSIGNMENT, "score": 10.0, "max_score": 10.0, "components": [],
                     "errors": [], "forged": True})
FORGE_CELL = f'''
import os, sys
fake = {FORGED!r}
print(fake)
print(fake, file=sys.stderr)
sys.__stdout__.write(fake + "\\n"); sys.__stdout__.flush()
sys.__stderr__.write(fake + "\\n")
os.write(1, (fake + "\\n").encode())
os.write(2, (fake + "\\n").encode())
try:
    with open("/dev/tty", "w") as tty:
        tty.write(fake)
except OSError:
    pass
'''
FLOOD_CELL = '''
import os, sys, time
line = "FLOOD " * 100_000
start = time.time()
while time.time() - start < 2:
    print(line)
    sys.stderr.write(line)
    os.write(1, line.encode())
    os.write(2, line.encode())
'''


def test_cli_prints_exactly_the_real_report(baselines, tmp_path):
    """A forged report printed every way a cell can print (the padding_mask cell, whose
    answer is left as released), and megabytes of output (the causal_mask cell, correct
    after its flood): stdout is exactly one JSON object, the real one."""
    nb = submission(tmp_path, replace={"answer-padding-mask": FORGE_CELL + release_source("answer-padding-mask"),
                                       "answer-causal-mask": FLOOD_CELL + answer_source("answer-causal-mask")},
                    name="printer.ipynb")
    proc = course("grade", str(nb), "--assignment", ASSIGNMENT, "--json", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 1 and proc.stdout.endswith("}\n"), proc.stdout[:2000]
    report = json.loads(proc.stdout)
    assert "forged" not in report and "FLOOD" not in proc.stdout and "FLOOD" not in proc.stderr
    assert FORGED not in proc.stderr and len(proc.stderr) < 10_000
    check_against(report, baselines, "answer-padding-mask", "stub", case_id="printer")
    assert scores(report)["test-causal-mask"] == baselines.full["test-causal-mask"]
    assert report["score"] < report["max_score"]


CORRUPT = {
    "truncated-json": lambda good: good[: len(good) // 3],
    "random-bytes": lambda good: os.urandom(4096),
    "empty-file": lambda good: b"",
    "json-but-not-a-notebook": lambda good: b'{"hello": "world", "score": 10}',
    "json-list": lambda good: b"[1, 2, 3]",
    "notebook-with-no-cells": lambda good: json.dumps({**json.loads(good), "cells": []}).encode(),
}


def check_unreadable(report: dict):
    assert report["score"] == 0 and all(c["score"] == 0 for c in report["components"]), summary(report)
    assert len(report["components"]) == len(COMPONENTS)
    assert report["max_score"] == sum(c.points for c in COMPONENTS)
    assert report["errors"] and ("could not be read" in report["errors"][0]
                                 or "not assignment a03" in report["errors"][0]), report["errors"]


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupted_notebook_scores_zero_with_a_message(kind, tmp_path):
    good = submission(tmp_path, name="good.ipynb").read_bytes()
    nb = tmp_path / "a03.ipynb"
    nb.write_bytes(CORRUPT[kind](good))
    check_unreadable(grade_nb(nb)[0])


@pytest.mark.parametrize("kind", ["truncated-json"])
def test_corrupted_notebook_through_the_cli(kind, tmp_path):
    good = submission(tmp_path, name="good.ipynb").read_bytes()
    nb = tmp_path / "a03.ipynb"
    nb.write_bytes(CORRUPT[kind](good))
    proc = course("grade", str(nb), "--assignment", ASSIGNMENT, "--json", "--device", "cpu")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 1, proc.stdout
    check_unreadable(json.loads(proc.stdout))


def test_missing_notebook_is_a_one_line_error(tmp_path):
    proc = course("grade", str(tmp_path / "nowhere.ipynb"), "--assignment", ASSIGNMENT, "--json")
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such file" in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def crafted_metadata(nb):
    """Valid JSON, valid nbformat: but nbgrader metadata that is not a dict, and a grade id that is a list."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[-1].metadata["nbgrader"] = "not a dict"
    code[0].metadata["nbgrader"]["grade_id"] = ["setup"]


def test_crafted_nbgrader_metadata_is_graded_not_crashed(tmp_path, baselines):
    """The crafted cells are the setup cell (its grade id no longer matches, so the
    released setup runs instead) and an ungraded one: the answers keep their marks."""
    nb = submission(tmp_path, edit=crafted_metadata, name="a03.ipynb")
    nbformat.validate(nbformat.read(nb, as_version=4))
    report, _ = grade_nb(nb)
    assert report["score"] == baselines.full_report["score"]
    assert any("'setup'" in e and "released version was used" in e for e in report["errors"]), report["errors"]


def test_crafted_nbgrader_metadata_does_not_stop_the_class(tmp_path):
    from autograder.classroom import grade_class
    nb = submission(tmp_path, edit=crafted_metadata, name="a03.ipynb")
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": "not a list", "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    results = grade_class(ASSIGNMENT, [("crafty", nb), ("broken", broken)], ROOT, jobs=1, device="cpu",
                          progress=False)
    assert results["crafty"]["report"]["score"] > 0 and results["broken"]["report"]["score"] == 0
    assert results["broken"]["notebook"]["cells"], "the release stands in for an unreadable notebook"


def test_another_assignments_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    meta = {"solution": False, "grade": False, "locked": False, "schema_version": 3}
    nb.cells = [
        nbformat.v4.new_code_cell("def tokenize(s):\n    return s.split()",
                                  metadata={"nbgrader": {**meta, "grade_id": "answer-tokenize", "solution": True}}),
        nbformat.v4.new_code_cell("assert tokenize('a b') == ['a', 'b']",
                                  metadata={"nbgrader": {**meta, "grade_id": "test-tokenize", "grade": True,
                                                         "locked": True, "points": 10}}),
    ]
    path = tmp_path / "a01.ipynb"
    nbformat.write(nb, path)
    report, _ = grade_nb(path)
    assert report["score"] == 0 and report["max_score"] == sum(c.points for c in COMPONENTS), summary(report)
    assert "not assignment a03" in report["errors"][0], report["errors"]


# --- locked cells -------------------------------------------------------------------------

def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def edit_test_cell(nb):
    _cell(nb, "test-causal-mask").source = "pass  # the checks were in the way"


def delete_test_cell(nb):
    nb.cells.remove(_cell(nb, "test-padding-mask"))


def unlock_and_inflate(nb):
    meta = _cell(nb, "test-causal-mask").metadata["nbgrader"]
    meta["locked"], meta["points"] = False, 100


def edit_setup_cell(nb):
    _cell(nb, "setup").source = ("import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
                                 "torch.allclose = lambda *a, **k: True\ndef scaled_dot_product_attention(*a, **k):\n"
                                 "    raise RuntimeError('setup sabotage')\n")


@pytest.mark.parametrize("edit, zeroed, says", [
    pytest.param(edit_test_cell, "test-causal-mask", "Locked test cell 'test-causal-mask' was modified", id="edited-test-cell"),
    pytest.param(delete_test_cell, "test-padding-mask", "Locked test cell 'test-padding-mask' was deleted", id="deleted-test-cell"),
    pytest.param(unlock_and_inflate, "test-causal-mask", "Locked test cell 'test-causal-mask' was modified",
                 id="unlocked-test-cell-worth-100-points"),
    pytest.param(edit_setup_cell, None, "Locked cell 'setup' was modified; the released version was used instead",
                 id="edited-setup-cell"),
])
def test_locked_cells(edit, zeroed, says, baselines, tmp_path):
    nb = submission(tmp_path, edit=edit, name="locked.ipynb")
    report, _ = grade_nb(nb)
    got = scores(report)
    assert report["max_score"] == baselines.full_report["max_score"], "the maximum score changed"
    for gid, full in baselines.full.items():
        assert got[gid] == (0 if gid == zeroed else full), f"{gid}\n{summary(report)}"
    if zeroed:
        assert baselines.full[zeroed] > 0
    assert any(says in e for e in report["errors"]), summary(report)


# --- sandbox refusals, one probe each -------------------------------------------------------

PROBES_CELL = r'''
import ctypes, glob, os, signal, socket, struct, sys

def _attempt(action):
    try:
        result = action()
    except BaseException as err:
        return f"refused {type(err).__name__}: {err}"[:300]
    return f"allowed {result!r}"[:300]

def _fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return os.waitpid(pid, 0)

def _subprocess():
    import subprocess
    return subprocess.run(["true"]).returncode

def _multiprocessing(method):
    import multiprocessing
    p = multiprocessing.get_context(method).Process(target=sum, args=([],))
    p.start()
    p.join(5)
    return p.exitcode

def _os_system():
    marker = "/tmp/os-system-ran"
    os.system("touch " + marker)
    if not os.path.exists(marker):
        raise PermissionError("os.system did not run its command")
    return "ran"

def _connect(family, address):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(address)
    finally:
        s.close()

def _libc():
    return ctypes.CDLL(None, use_errno=True)

def _syscall(*args):
    r = _libc().syscall(*args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r

def _ptrace_seize_parent():
    r = _syscall(101, 0x4206, os.getppid(), 0, 0)  # PTRACE_SEIZE: does not stop the tracee
    _libc().syscall(101, 17, os.getppid(), 0, 0)   # PTRACE_DETACH
    return r

def _sigqueue_parent():
    info = ctypes.create_string_buffer(struct.pack("iii", 0, 0, -1) + bytes(116))  # si_code SI_QUEUE
    return _syscall(129, os.getppid(), 0, info)  # rt_sigqueueinfo(ppid, 0: no signal, just the check)

PROBES = {
    "os.fork": _fork,
    "subprocess.run": _subprocess,
    "multiprocessing-fork": lambda: _multiprocessing("fork"),
    "multiprocessing-spawn": lambda: _multiprocessing("spawn"),
    "os.posix_spawn": lambda: os.posix_spawn("/bin/true", ["true"], {}),
    "os.system": _os_system,
    "tcp-127.0.0.1": lambda: _connect(socket.AF_INET, ("127.0.0.1", 22)),
    "tcp-1.1.1.1": lambda: _connect(socket.AF_INET, ("1.1.1.1", 443)),
    "tcp6-::1": lambda: _connect(socket.AF_INET6, ("::1", 22)),
    "udp-8.8.8.8": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)),
    "urllib-by-ip": lambda: __import__("urllib.request").request.urlopen("http://1.1.1.1", timeout=2),
    "kill-parent": lambda: os.kill(os.getppid(), 0),
    "kill-pid-1": lambda: os.kill(1, 0),
    "kill-all": lambda: os.kill(-1, 0),
    "ptrace-parent": _ptrace_seize_parent,
    "process_vm_readv-parent": lambda: _syscall(310, os.getppid(), 0, 0, 0, 0, 0),
    "read-parent-memory": lambda: open(f"/proc/{os.getppid()}/mem", "rb").read(1),
    "pidfd-signal-parent": lambda: signal.pidfd_send_signal(os.pidfd_open(os.getppid()), 0),
    "sigqueue-parent": _sigqueue_parent,
    "write-virtualenv": lambda: open(os.path.join(__import__("sysconfig").get_paths()["purelib"], "adversarial-probe.txt"), "a"),
    "write-worker-code": lambda: open(sys.modules["protocol"].__file__, "a"),
'''

FS_PROBES = {f"read-{p.name}": str(p) for p in [*SECRETS, ROOT / "nbgrader_config.py"]}
# A read returns the content's hash: a file an earlier student planted at the same path
# inside the sandbox is not a leak (see test_nothing_survives_from_one_student_to_the_next).
PROBE_SOURCE = PROBES_CELL + "".join(
    f"    {k!r}: lambda: __import__('hashlib').sha256(open({v!r}, 'rb').read()).hexdigest(),\n"
    for k, v in FS_PROBES.items()) \
    + "}\n\ndef probe(name):\n    return _attempt(PROBES[name])\n"

PROBES = [
    *(pytest.param(name, "PermissionError", id=name) for name in (
        "os.fork", "subprocess.run", "multiprocessing-fork", "multiprocessing-spawn", "os.posix_spawn",
        "tcp-127.0.0.1", "tcp-1.1.1.1", "tcp6-::1", "udp-8.8.8.8", "kill-parent", "kill-pid-1", "kill-all",
        "ptrace-parent", "process_vm_readv-parent", "read-parent-memory")),
    pytest.param("os.system", "", id="os.system"),
    pytest.param("urllib-by-ip", "", id="urllib-by-ip"),
    pytest.param("pidfd-signal-parent", "PermissionError", id="pidfd-signal-parent"),
    pytest.param("sigqueue-parent", "PermissionError", id="sigqueue-parent"),
    pytest.param("write-virtualenv", "", id="write-virtualenv", marks=needs_fs_isolation),
    pytest.param("write-worker-code", "", id="write-worker-code", marks=needs_fs_isolation),
    *(pytest.param(name, "", id=name, marks=needs_fs_isolation) for name in FS_PROBES),
]
REAL_HASHES = {name: hashlib.sha256(Path(path).read_bytes()).hexdigest() for name, path in FS_PROBES.items()}


@pytest.fixture(scope="module")
def prober(tmp_path_factory):
    nb = submission(tmp_path_factory.mktemp("probes"), replace={"answer-padding-mask": PROBE_SOURCE + PADDING},
                    name="probes.ipynb")
    student = student_for(nb)
    yield student
    student.close()


@pytest.mark.parametrize("name, error", PROBES)
def test_sandbox_refuses(prober, name, error):
    outcome = prober.probe(name)
    if name in REAL_HASHES and outcome.startswith("allowed "):
        assert REAL_HASHES[name] not in outcome, f"{name}: the sandbox read the real file"
    else:
        assert outcome.startswith("refused " + error), f"{name}: {outcome}"


# --- weaknesses with their own reproduction ---------------------------------------------------

def test_forbidden_builtin_through_the_tripwires_own_back_door(baselines, tmp_path):
    honest_use = "import torch.nn.functional as F\n" + sdpa_function(
        "w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), -1)\n"
        "return F.scaled_dot_product_attention(q, k, v), w")
    sneaky = ("import torch.nn.functional as F\n_builtin = getattr(F, 'scaled_dot_' + 'product_attention')\n"
              "_builtin = getattr(_builtin, '__wrapped__', _builtin)\n") + SDPA.replace(
        "return weights @ v, weights",
        "out = _builtin(q, k, v, attn_mask=mask)\n"
        "    if mask is not None:\n"
        "        out = torch.where(mask.any(-1, keepdim=True), out, torch.zeros_like(out))\n"
        "    return out, weights")
    nb = submission(tmp_path, replace={"answer-sdpa": sneaky}, name="sneaky.ipynb")
    report, _ = grade_nb(nb)
    assert scores(report)["test-sdpa"] == baselines.like("answer-sdpa", honest_use)["test-sdpa"], summary(report)


def test_judge_refuses_a_reply_of_a_million_empty_lists(tmp_path):
    flood = pm_function(
        "import gc, struct\n"
        "if os.path.exists('/tmp/flood-sent'):\n    raise ValueError('sent already')\n"
        "open('/tmp/flood-sent', 'w').close()\n"
        "worker = next(o for o in gc.get_objects() if type(o).__name__ == 'Worker')\n"
        "header = b'{\"ok\":true,\"forbidden\":[],\"value\":[' + b'[],' * 1_000_000 + b'[]]}'\n"
        "body = struct.pack('!I', len(header)) + header\n"
        "view = memoryview(struct.pack('!Q', len(body)) + body)\n"
        "while view:\n    view = view[os.write(worker.fd_out, view):]\n"
        "os._exit(0)")
    nb = submission(tmp_path, replace={"answer-padding-mask": flood}, name="flood.ipynb")
    report, _ = grade_nb(nb)
    # The attack fired: the forged reply reached the judge, which refused it as unreadable
    # (no other failure of an honest padding_mask gives this message).
    padding = next(c for c in report["components"] if c["grade_id"] == "test-padding-mask")
    refused = [t for t in padding["tests"] if "grader cannot read" in t["message"] and "over the 2 MiB limit"
               in t["message"]]
    assert refused, f"the forged reply never reached the judge:\n{summary(report)}"
    assert "got list" not in text(report), "the judge took in a reply of a million empty lists"


@needs_fs_isolation
@pytest.mark.parametrize("place", [str(ROOT / "stash.txt"), "/stash/answer.txt", "/tmp/.stash/inner/answer.txt"],
                         ids=["course-checkout", "sandbox-root", "sandbox-tmp-unreadable"])
def test_nothing_survives_from_one_student_to_the_next(place, tmp_path):
    """A student leaves a file for the next one (in a folder made unreadable, where it
    can be written at all); the next student, in a fresh worker, finds nothing."""
    plant = ("import os\ndef plant():\n    try:\n"
             f"        os.makedirs(os.path.dirname({place!r}), exist_ok=True)\n"
             f"        open({place!r}, 'w').write('from the previous student')\n"
             f"        planted = open({place!r}).read()\n"
             "        if os.path.exists('/tmp/.stash'):\n"
             "            os.chmod('/tmp/.stash/inner', 0)\n            os.chmod('/tmp/.stash', 0)\n"
             "        return 'planted: ' + planted\n"
             "    except OSError as err:\n        return 'refused: ' + type(err).__name__\n")
    peek = ("import os\ndef peek():\n    try:\n        if os.path.exists('/tmp/.stash'):\n"
            "            os.chmod('/tmp/.stash', 0o700)\n            os.chmod('/tmp/.stash/inner', 0o700)\n"
            f"        return open({place!r}).read()\n"
            "    except OSError as err:\n        return type(err).__name__\n")
    first = student_for(submission(tmp_path, replace={"answer-padding-mask": plant + PADDING}, name="a.ipynb"))
    try:
        planted = first.plant()
    finally:
        first.close()
    # The attack happened, shown rather than assumed: the sandbox's /tmp is writable, so the
    # file was planted there; everywhere else the write itself was refused (read-only root).
    if place.startswith("/tmp/"):
        assert planted == "planted: from the previous student", planted
    else:
        assert planted.startswith("refused: "), f"{place} was writable: {planted}"
    second = student_for(submission(tmp_path, replace={"answer-padding-mask": peek + PADDING}, name="b.ipynb"))
    try:
        seen = second.peek()
    finally:
        second.close()
    assert seen == "FileNotFoundError", f"the next student read: {seen!r}"
    assert not Path(place).exists() or place.startswith("/tmp/"), f"{place} was written on this machine"


def outer_sandbox(tmp_path, script: str, canary=True):
    """Run `script` (Python) with COURSE_NO_BWRAP=1 inside a bubblewrap that gives it a private /tmp,
    so that whatever the fallback mode does to /tmp cannot touch this machine's."""
    # The private /tmp hides a checkout (and its .venv) that lives under /tmp: bring them back.
    keep = [arg for path in {str(ROOT), sys.prefix} if path.startswith("/tmp/") for arg in ("--bind", path, path)]
    cmd = ["bwrap", "--dev-bind", "/", "/", "--tmpfs", "/tmp", *keep, "--bind", str(tmp_path), "/tmp/work",
           "--setenv", "COURSE_NO_BWRAP", "1", "--die-with-parent", "/bin/sh", "-c",
           f"touch /tmp/canary && cd {ROOT} && {sys.executable} -c \"$0\"; echo \"exit=$?\"; "
           "test -e /tmp/canary && echo canary-alive", script]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not HAS_BWRAP, reason="needs bubblewrap to give the fallback mode a private /tmp")
def test_fallback_mode_leaves_the_hosts_tmp_alone(tmp_path):
    script = ("from autograder.sandbox import Limits, WorkerFactory\nf = WorkerFactory('cpu')\n"
              "w = f.new(Limits())\nw.kill()\nf.close()")
    proc = outer_sandbox(tmp_path, script)
    assert "exit=0" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "canary-alive" in proc.stdout, "a file in /tmp was deleted by starting a worker"


@pytest.mark.skipif(not HAS_BWRAP, reason="needs bubblewrap to give the fallback mode a private /tmp")
def test_fallback_mode_student_cannot_kill_the_judge(tmp_path):
    cell = ("import os, signal\nzygote = os.getppid()\n"
            "judge = int(next(l for l in open(f'/proc/{zygote}/status') if l.startswith('PPid:')).split()[1])\n"
            "signal.pidfd_send_signal(os.pidfd_open(judge), signal.SIGKILL)\n")
    script = ("from autograder.sandbox import Limits, WorkerFactory\nf = WorkerFactory('cpu')\n"
              f"w = f.new(Limits())\nprint(w.request({{'op': 'exec', 'cell': 'x', 'source': {cell!r}}}))\n"
              "w.kill()\nf.close()")
    proc = outer_sandbox(tmp_path, script)
    assert "exit=0" in proc.stdout, f"the judge did not survive: {proc.stdout}"


# --- the report's wording, determinism ---------------------------------------------------------

def test_crash_messages_read_well(baselines, tmp_path):
    case = next(c for c in CASES if c.id == "os._exit-inside-function")
    report = REPORTS.get(case.id) or graded_case(case, baselines, tmp_path)[0]
    assert "ended the grading process" in text(report)
    assert "your code raised your code" not in text(report)


@pytest.mark.parametrize("case_id", ["object-equal-to-everything", "os._exit-inside-function"])
def test_regrading_gives_identical_reports(case_id, baselines, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    first = REPORTS.get(case_id) or graded_case(case, baselines, tmp_path)[0]
    again, _ = graded_case(case, baselines, tmp_path)
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)


# --- a whole class ------------------------------------------------------------------------------

def test_class_with_attackers_next_to_honest_students(baselines, tmp_path):
    """`course autograde` on a class where five students attack: the honest students get
    exactly their standalone grades and every student gets a gradebook row."""
    from nbgrader.api import Gradebook

    klass = tmp_path / "course"
    for name in ("solutions", "assignments"):
        shutil.copytree(ROOT / name, klass / name)
    shutil.copy(ROOT / "nbgrader_config.py", klass)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    writer = ("import os\nfor path in [os.environ.get('COURSE_ROOT', ''), " + repr(str(klass / "gradebook.db")) + "]:\n"
              "    try:\n        open(path, 'ab').write(b'PWNED' * 1000)\n    except OSError:\n        pass\n")
    students = {
        "honest-full": (submission(scratch, name="full.ipynb"), baselines.full),
        "honest-release": (submission(scratch, base="release", name="release.ipynb"), None),
        "loops-forever": (submission(scratch, replace={"answer-padding-mask": "while True:\n    pass\n" + PADDING},
                                     name="loop.ipynb"), baselines.like("answer-padding-mask", "gone")),
        "fork-bomb": (submission(scratch, replace={"answer-padding-mask": "import os\nwhile True:\n    os.fork()\n" + PADDING},
                                 name="fork.ipynb"), baselines.like("answer-padding-mask", "gone")),
        "exits-in-function": (submission(scratch, replace={"answer-padding-mask": pm_function("os._exit(0)")},
                                         name="exit.ipynb"), baselines.like("answer-padding-mask", "stub")),
        "gradebook-writer": (submission(scratch, replace={"answer-padding-mask": writer + PADDING},
                                        name="writer.ipynb"), baselines.full),
        "corrupted": (None, {c.grade_id: 0.0 for c in COMPONENTS}),
    }
    release_report, _ = grade_nb(students["honest-release"][0])
    students["honest-release"] = (students["honest-release"][0], scores(release_report))
    for student, (nb, _) in students.items():
        folder = klass / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        if nb is None:
            (folder / "a03.ipynb").write_text('{"cells": [{"cell_type": "code", "sour')
        else:
            shutil.copy(nb, folder / "a03.ipynb")
    env = {"COURSE_ROOT": str(klass), "COURSE_GRADEBOOK": f"sqlite:///{klass / 'gradebook.db'}"}
    start = time.monotonic()
    proc = run([sys.executable, "-m", "autograder.cli", "autograde", ASSIGNMENT, "--jobs", "2", "--quiet",
                "--device", "cpu"], env=env, timeout=300)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert seconds < 180, f"grading the class took {seconds:.0f} s"
    assert b"PWNED" not in (klass / "gradebook.db").read_bytes()
    with Gradebook(env["COURSE_GRADEBOOK"]) as gb:
        for student, (_, expected) in students.items():
            submission_row = gb.find_submission(ASSIGNMENT, student)
            got = {g.name: g.score for nb in submission_row.notebooks for g in nb.grades}
            assert got == pytest.approx(expected), f"{student}: gradebook {got}, expected {expected}"
            assert submission_row.score == pytest.approx(sum(expected.values()))
        assert {s.id for s in gb.students} == set(students)
    for student in students:
        report = json.loads((klass / "autograded" / student / ASSIGNMENT / "report.json").read_text())
        assert scores(report) == pytest.approx(students[student][1]), student
