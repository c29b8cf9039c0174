"""What a hidden suite can do with a student's objects through the proxy, in the
sandbox: Python's operators (so that `a * b + 1` builds the student's own
expression, with reflected operators when a number comes first), and code of the
suite's own defined in the student's namespace (a function for student code to
call), which survives a worker restart."""
import pytest

from autograder.sandbox import Limits
from autograder.student import LocalTransport, RemoteTransport, Student, StudentCrashed, StudentError
from autograder.judge import worker_factory

pytestmark = pytest.mark.slow

TOY = '''
import os

class Box:
    """A number that records how it was made."""
    def __init__(self, x, how="leaf"):
        self.x, self.how = x, how
    def _other(self, o):
        return o if isinstance(o, Box) else Box(o, "const")
    def __add__(self, o): return Box(self.x + self._other(o).x, "add")
    def __radd__(self, o): return self + o
    def __mul__(self, o): return Box(self.x * self._other(o).x, "mul")
    def __rmul__(self, o): return Box(self._other(o).x * self.x, "rmul")
    def __pow__(self, n): return Box(self.x ** n, "pow")
    def __neg__(self): return Box(-self.x, "neg")
    def __truediv__(self, o): return Box(self.x / self._other(o).x, "div")
    def __rtruediv__(self, o): return Box(self._other(o).x / self.x, "rdiv")

def crash():
    os._exit(3)
'''


@pytest.fixture(params=["sandbox", "in-process"])
def student(request):
    if request.param == "sandbox":
        transport = RemoteTransport([("toy", TOY)], Limits(call_seconds=10), worker_factory("cpu"))
    else:
        transport = LocalTransport([("toy", TOY)])
    s = Student(transport)
    yield s
    s.close()


def test_operators_build_the_students_objects(student):
    a, b = student.Box(2.0), student.Box(5.0)
    c = a * b + 3
    assert c.x.get() == 13.0 and c.how.get() == "add"
    assert (2 * a).how.get() == "rmul" and (2 * a).x.get() == 4.0
    assert (1 / a).x.get() == 0.5 and (1 / a).how.get() == "rdiv"
    assert (-a).x.get() == -2.0 and (a ** 3).x.get() == 8.0


def test_missing_operators_are_the_students_error(student):
    with pytest.raises(StudentError, match="unsupported operand"):
        student.Box(1.0) - 1


def test_comparisons_stay_refused(student):
    with pytest.raises(TypeError):
        student.Box(1.0) == student.Box(1.0)  # noqa: B015
    with pytest.raises(TypeError):
        bool(student.Box(1.0))


def test_suite_code_runs_beside_the_students(student):
    student.define("def grader_square(box):\n    return box * box\n")
    assert student.grader_square(student.Box(3.0)).x.get() == 9.0


def test_suite_code_survives_a_worker_restart():
    transport = RemoteTransport([("toy", TOY)], Limits(call_seconds=10), worker_factory("cpu"))
    s = Student(transport)
    try:
        s.define("def grader_twice(box):\n    return box + box\n")
        with pytest.raises(StudentCrashed):
            s.crash()
        assert s.grader_twice(s.Box(4.0)).x.get() == 8.0
        assert transport.restarts == 1
    finally:
        s.close()
