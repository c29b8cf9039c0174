"""The test run's budget, measured on every run and printed in its summary.

`make test` must stay under 40 minutes on 2 cores when the course has 15
chapters (CI stops at 90). So each assignment's share of the run's wall time
(its audit, release, public checks and chapter checks: every test parametrized
by aNN or by its chapter, divided by how many tests ran at once) stays under
ASSIGNMENT_SECONDS, and each book page executes in under PAGE_SECONDS
(tests/test_book.py checks pages). A run over an assignment's budget fails,
with the table saying where the time went.
"""
import json
import re
import time
from collections import defaultdict
from pathlib import Path

ASSIGNMENT_SECONDS = 90
PAGE_SECONDS = 20
CHAPTERS_PLANNED = 15
TOTAL_MINUTES = 40

_durations = defaultdict(float)   # nodeid -> seconds (setup + call + teardown)
_started, _started_wall = time.monotonic(), time.time()
EXEC_TIMES = Path(__file__).resolve().parent.parent / "_build" / "test-exec-times.json"


def owner_of(nodeid: str) -> str | None:
    """aNN when the test is parametrized by an assignment or its chapter folder. Read
    from the test id, which is all a pytest-xdist controller sees of a test."""
    params = nodeid.partition("[")[2].rstrip("]")
    for value in re.split(r"-(?=a\d\d\b|book/)", params):
        if re.fullmatch(r"a\d\d", value):
            return value
        m = re.match(r"book/ch(\d\d)-", value)
        if m:
            return f"a{m.group(1)}"
    return None


def pytest_runtest_logreport(report):
    _durations[report.nodeid] += report.duration


def record_exec_times(times: dict) -> None:
    """Called by the built_book fixture; kept in a file for the controller of a
    parallel run (pytest-xdist), whose summary this is."""
    EXEC_TIMES.parent.mkdir(parents=True, exist_ok=True)
    EXEC_TIMES.write_text(json.dumps(times))


def _exec_times() -> dict:
    if EXEC_TIMES.exists() and EXEC_TIMES.stat().st_mtime >= _started_wall:
        return json.loads(EXEC_TIMES.read_text())
    return {}


def shares() -> tuple[dict, dict]:
    per_assignment, shared = defaultdict(float), defaultdict(float)
    for nodeid, seconds in _durations.items():
        owner = owner_of(nodeid)
        if owner:
            per_assignment[owner] += seconds
        else:
            shared[nodeid.split("::")[0]] += seconds
    return dict(per_assignment), dict(shared)


def concurrency() -> float:
    """How many tests ran at once, on average: test time over wall time (1 without
    pytest-xdist). Time summed over processes that share 2 cores counts each second
    twice, so shares of the run are test time divided by this."""
    wall = time.monotonic() - _started
    return max(sum(_durations.values()) / wall, 1.0) if wall > 0 else 1.0


def over_budget() -> list[str]:
    per_assignment, _ = shares()
    factor = concurrency()
    return [f"{name}: {seconds / factor:.0f} s of the run, over its {ASSIGNMENT_SECONDS} s budget"
            for name, seconds in sorted(per_assignment.items()) if seconds / factor > ASSIGNMENT_SECONDS]


def pytest_terminal_summary(terminalreporter):
    per_assignment, shared = shares()
    if not _durations:
        return
    write = terminalreporter.write_line
    factor = concurrency()
    terminalreporter.section("test-run budget (README: Budget for chapter authors)")
    write(f"  seconds of this run's wall time (test time / {factor:.2f}, the tests running at once)")
    for name, seconds in sorted(per_assignment.items()):
        flag = "  OVER" if seconds / factor > ASSIGNMENT_SECONDS else ""
        write(f"  {name + ' (its tests)':<48}{seconds / factor:7.1f} s  (budget {ASSIGNMENT_SECONDS} s){flag}")
    for path, seconds in sorted(shared.items(), key=lambda kv: -kv[1]):
        write(f"  {path:<48}{seconds / factor:7.1f} s  (shared)")
    for page, seconds in sorted(_exec_times().items()):
        flag = "  OVER" if seconds > PAGE_SECONDS else ""
        write(f"  {page:<48}{seconds:7.1f} s  to execute (budget {PAGE_SECONDS} s){flag}")
    wall = time.monotonic() - _started
    if per_assignment:
        mean, fixed = sum(per_assignment.values()) / len(per_assignment), sum(shared.values())
        projected = (fixed + CHAPTERS_PLANNED * mean) / factor / 60
        write(f"  this run: {wall / 60:.1f} min; at {CHAPTERS_PLANNED} chapters like these: about "
              f"{projected:.0f} min (budget {TOTAL_MINUTES} min)")
    for line in over_budget():
        write(f"  OVER BUDGET {line}")


def pytest_sessionfinish(session):
    if over_budget() and session.exitstatus == 0:
        session.exitstatus = 1
