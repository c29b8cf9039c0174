"""Grade one notebook: hidden pytest suite in this (trusted) process, student
code in a sandboxed worker, results as the JSON report of `course grade`."""
import contextlib
import io
import time
import zlib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from . import extract
from .config import SuiteConfig, suite_dir
from .paths import CourseError, GraderError, course_root
from .sandbox import WorkerDied, worker_factory
from .student import (ForbiddenAPI, LocalTransport, RemoteTransport, SandboxFailure, Student, StudentCrashed,
                      StudentError, StudentTimeout)
from .suite import Feedback, gates_in

GPU_REASON = "needs a GPU: not graded on this machine"
WORKER_HELP = "COURSE_DEBUG_WORKER=1 shows why (README: When the grader fails)"

MAX_TIMEOUTS = 2  # after this many timeouts, a component's remaining tests are not run


def use_one_thread() -> None:
    """One torch thread for a judge: its tensors are small, idle threads spinning for
    work slow down the worker it waits for (15% per notebook), and two judges with
    a thread per core each spin against each other (5 times slower)."""
    torch.set_num_threads(1)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CourseError("--device cuda: PyTorch sees no CUDA device on this machine "
                          "(use --device auto, which grades on CPU here and marks GPU tests not_graded)")
    return device


@lru_cache(maxsize=None)
def reference_student(assignment: str, root: str) -> Student:
    """The solution's own code, run in this process: trusted, and never shown."""
    return Student(LocalTransport(extract.reference_cells(assignment, Path(root))))


class GradingPlugin:
    """Gives suites their fixtures and records one outcome per test."""

    def __init__(self, student, reference, device, prepared, config=None, deadline=None):
        self._student, self._reference, self._device = student, reference, device
        self.config = config
        self.deadline = deadline  # time.monotonic() past which no further test starts
        self.overran = False
        self.failure = None  # why grading itself failed, if it did
        self.components = {c.grade_id: c for c in prepared.components} if prepared else {}
        self.results = {}  # nodeid -> dict
        self.gates, self.gate_errors = {}, {}  # component -> check, and what it raised (None: passed)
        self.timeouts = {}  # component -> count: a hanging component stops being called
        self.blocked_by_gate = set()  # nodeids of tests failed because their gate failed

    # fixtures --------------------------------------------------------------
    @pytest.fixture
    def student(self):
        return self._student

    @pytest.fixture
    def reference(self):
        return self._reference

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "component(grade_id): the graded component a test belongs to")
        config.addinivalue_line("markers", "weight(w): relative weight of a test in its component")
        config.addinivalue_line("markers", "gpu: needs a CUDA device")
        config.addinivalue_line("markers", "spec(*quotes): the sentences of the student's spec a test grades")

    def pytest_generate_tests(self, metafunc):
        if "device" in metafunc.fixturenames:
            metafunc.parametrize("device", [
                pytest.param("cpu"),
                pytest.param("cuda", marks=pytest.mark.gpu),
            ])

    # hooks -----------------------------------------------------------------
    def pytest_collection_modifyitems(self, items):
        for module in {item.module for item in items if getattr(item, "module", None)}:
            self.gates.update(gates_in(module))

    def pytest_runtest_setup(self, item):
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.overran = True
            item.session.shouldstop = "out of time for this notebook"
            pytest.skip("not run: grading this notebook ran out of time")
        seed = zlib.crc32(item.nodeid.encode())
        self._seed(seed)
        if item.get_closest_marker("gpu") and not self._device.startswith("cuda"):
            pytest.skip(GPU_REASON)
        comp = self.components.get(_component_of(item))
        if self.config is not None:  # what this test's component may not call at run time
            self._student._forbidden = set(self.config.forbidden_for(_component_of(item) or ""))
        if comp is not None and comp.zero_reason:
            raise Feedback(comp.zero_reason)
        if comp is not None and comp.forbidden_used:
            raise ForbiddenAPI(comp.forbidden_used)
        if self.timeouts.get(_component_of(item), 0) >= MAX_TIMEOUTS:
            raise StudentTimeout(f"not run: this component's code already timed out {MAX_TIMEOUTS} times")
        try:
            self._pass_gate(_component_of(item))
        except BaseException:
            self.blocked_by_gate.add(item.nodeid)
            raise
        self._seed(seed)  # the test's random inputs do not depend on whether its gate ran

    def _seed(self, seed):
        # Not torch.manual_seed: with CUDA present but not yet initialised it records
        # a stack trace per call, which cost a third of the judge's time.
        torch.default_generator.manual_seed(seed)
        if self._device.startswith("cuda"):
            torch.cuda.manual_seed_all(seed)

    def _pass_gate(self, component):
        """Run the component's gate once per notebook; re-raise its failure for each test."""
        if component not in self.gates:
            return
        if component in self.gate_errors:  # its first test already showed why, in full
            if self.gate_errors[component] is not None:
                raise Feedback("not credited until the basic check above passes")
            return
        try:
            self.gates[component](self._student)
            self.gate_errors[component] = None
        except Feedback as err:
            self.gate_errors[component] = err
            raise Feedback(f"not credited until this basic check passes: {err}") from None
        except Exception as err:  # a crash or timeout is reported as such, as for a test
            self.gate_errors[component] = err
            raise

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.excinfo is not None and isinstance(call.excinfo.value, SandboxFailure):
            self.failure = str(call.excinfo.value)
            item.session.shouldstop = self.failure
        if report.when == "call" or (report.when == "setup" and not report.passed):
            result = self.results[item.nodeid] = _result(item, report, call)
            result["gate"] = item.nodeid in self.blocked_by_gate
            if result["outcome"] == "timeout":
                self.timeouts[result["component"]] = self.timeouts.get(result["component"], 0) + 1


def _component_of(item) -> str | None:
    marker = item.get_closest_marker("component")
    return marker.args[0] if marker else None


def _describe(item) -> str:
    """The test's docstring (first line), with its parameters: what a student reads."""
    doc = (getattr(item, "function", None).__doc__ or "").strip() if hasattr(item, "function") else ""
    text = doc.splitlines()[0].rstrip(".") if doc else item.originalname.removeprefix("test_").replace("_", " ")
    params = item.name[len(item.originalname):]
    return f"{text} {params}" if params else text


def _result(item, report, call) -> dict:
    name, description = item.name, _describe(item)
    weight = float(item.get_closest_marker("weight").args[0]) if item.get_closest_marker("weight") else 1.0
    base = {"name": name, "test": item.originalname, "component": _component_of(item), "weight": weight}
    if report.skipped:
        return {**base, "outcome": "not_graded", "message": f"{description} ({GPU_REASON})"}
    if report.passed:
        return {**base, "outcome": "passed", "message": description}
    err = call.excinfo.value if call.excinfo else None
    if isinstance(err, StudentTimeout):
        return {**base, "outcome": "timeout", "message": f"{description}: {err}"}
    if isinstance(err, StudentError):
        return {**base, "outcome": "error", "message": f"{description}: your code raised {err}"}
    if isinstance(err, StudentCrashed):
        return {**base, "outcome": "error", "message": f"{description}: {err}"}
    if isinstance(err, (Feedback, ForbiddenAPI)):
        return {**base, "outcome": "failed", "message": f"{description}: {err}"}
    if isinstance(err, AssertionError):
        return {**base, "outcome": "failed", "message": f"{description}: check failed"}
    kind = type(err).__name__ if err else "error"
    return {**base, "outcome": "failed",
            "message": f"{description}: the value your code returned could not be checked ({kind})"}


def run_suite(assignment: str, plugin: GradingPlugin, select: str | None = None) -> None:
    folder = suite_dir(assignment)
    # Plugins a judge has no use for; unraisableexception alone runs gc.collect
    # several times per session (0.4 s a notebook).
    unused = ["cacheprovider", "unraisableexception", "threadexception", "logging", "faulthandler", "doctest",
              "junitxml", "pastebin", "stepwise", "legacypath"]
    args = [str(folder), *(f"-pno:{name}" for name in unused), "-q", "--tb=no", "-o", "addopts=",
            "--rootdir", str(folder), "--confcutdir", str(folder), "--import-mode=importlib", "-W", "ignore"]
    if select:
        args += ["-k", select]
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        code = pytest.main(args, plugins=[plugin])
    if code not in (0, 1):  # 1 = some tests failed, which is grading as usual
        raise RuntimeError(f"the hidden suite for {assignment} did not run (pytest exit {int(code)}):\n"
                           + sink.getvalue()[-2000:])


def score(prepared: extract.Prepared, results: dict) -> dict:
    components, total = [], 0.0
    for comp in prepared.components:
        tests = [r for r in results.values() if r["component"] == comp.grade_id]
        graded = [t for t in tests if t["outcome"] != "not_graded"]
        weight = sum(t["weight"] for t in graded)
        passed = sum(t["weight"] for t in graded if t["outcome"] == "passed")
        points = 0.0 if comp.zero_reason or weight == 0 else round(comp.points * passed / weight, 4)
        total += points
        components.append({"grade_id": comp.grade_id, "name": comp.name, "score": points,
                           "max_score": comp.points,
                           "tests": [{k: t[k] for k in ("name", "outcome", "message")} for t in tests]})
    return {"assignment": prepared.assignment, "score": round(total, 4),
            "max_score": sum(c.points for c in prepared.components), "components": components}


def empty_report(assignment: str, root: Path, error: str) -> dict:
    """A zero report for a notebook that could not be graded at all."""
    prepared = extract.Prepared(assignment, [], extract.components_of(
        extract.read_notebook(extract.release_notebook(assignment, root))))
    return {**score(prepared, {}), "errors": [error]}


def grade(notebook: Path, assignment: str, device: str = "auto", in_process: bool = False,
          root: Path | None = None, limits: dict | None = None) -> dict:
    """The report for one notebook. Raises CourseError only if grading cannot run.
    `limits` overrides fields of the suite's limits (tests use short time limits)."""
    return grade_detailed(notebook, assignment, device, in_process, root, limits)[0]


def grade_detailed(notebook: Path, assignment: str, device: str = "auto", in_process: bool = False,
                   root: Path | None = None, limits: dict | None = None) -> tuple[dict, list[dict]]:
    """The report, and the raw result of every hidden test: for `course audit`, which
    asks which test caught a mistake (`test`: the test function; `gate`: whether the
    component's gate failed it)."""
    root = root or course_root()
    config = SuiteConfig.load(assignment)
    if limits:
        config.limits = replace(config.limits, **limits)
    device = resolve_device(device)
    prepared = extract.prepare(notebook, assignment, config.forbidden_for, root)
    errors = list(prepared.messages)
    if prepared.fatal:
        empty = score(prepared, {})
        return {**empty, "errors": [prepared.fatal] + errors}, []

    deadline = time.monotonic() + config.limits.notebook_seconds
    if in_process:
        transport = LocalTransport(prepared.cells)
    else:
        try:
            transport = RemoteTransport(prepared.cells, config.limits, worker_factory(device),
                                        config.all_forbidden())
        except WorkerDied as err:
            raise GraderError(f"the sandbox could not start a worker; {WORKER_HELP}") from None
    student = Student(transport)
    try:
        plugin = GradingPlugin(student, reference_student(assignment, str(root)), device, prepared, config,
                               deadline)
        try:
            run_suite(assignment, plugin)
        except RuntimeError as err:
            raise GraderError(str(err).splitlines()[0]) from None
    finally:
        student.close()
    if plugin.failure:
        raise GraderError(f"{plugin.failure}; {WORKER_HELP}")
    if plugin.overran:
        raise GraderError(f"grading took longer than {config.limits.notebook_seconds:g} s "
                          "(limits.notebook_seconds in the suite's suite.toml); no grade was given")
    for cell_id, err in transport.cell_errors.items():
        errors.append(f"Answer cell '{cell_id}' raised {err.get('type', 'an error')}: {err.get('message', '')}"[:300])
    not_graded = sum(r["outcome"] == "not_graded" for r in plugin.results.values())
    if not_graded:
        errors.append(f"{not_graded} tests need a GPU and were not graded here; they do not count in this score.")
    return {**score(prepared, plugin.results), "errors": errors}, list(plugin.results.values())
