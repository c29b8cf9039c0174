"""What hidden suites talk to: a student's (or the reference's) code, as a proxy.

Suites see the same interface whether the code runs in a sandboxed worker
(``RemoteTransport``) or in this process (``LocalTransport``: the reference
solution, and instructors debugging a suite)::

    out, w = student.scaled_dot_product_attention(q, k, v)      # data in, data out
    layer = student.SelfAttention(8, 4)                          # a handle
    layer.load_state_dict(reference_layer.state_dict())          # methods by name
    weight = layer.W_q.weight.get()                              # read an attribute
    (out, w), args_after = student.scaled_dot_product_attention.with_inputs(q, k, v)
    result = student.vjp(layer, (x,), wrt=[0], cotangents=[g, None])
    c = student.Value(2.0) * 3 + a                               # operators run student-side
    student.define("def grader_f(x):\n    return (x ** 3).sum()")  # suite code beside theirs

Values cross as data only: tensors come back as plain tensors, other objects as
handles. Student failures surface as the exceptions below, which the judge turns
into outcomes and student-safe messages.
"""
from .protocol import HEADER, ProtocolError, dumps, encode, loads
from .sandbox import Limits, WorkerDied, WorkerFactory, WorkerTimeout
from .worker import Executor


class StudentError(Exception):
    """The student's code raised; the message is the student's own exception."""

    def __init__(self, info: dict):
        self.info = info
        where = f" ({info['where']})" if info.get("where") else ""
        super().__init__(f"{info.get('type', 'Error')}: {info.get('message', '')}"[:400] + where)


class StudentTimeout(Exception):
    pass


class StudentCrashed(Exception):
    pass


class SandboxFailure(Exception):
    """A fresh worker could not be started: the grader's fault, not the student's."""


class ForbiddenAPI(Exception):
    def __init__(self, names):
        self.names = names
        super().__init__(f"uses {', '.join(names)}, which this assignment forbids: build it from basic operations")


# --- transports ---------------------------------------------------------------------

class LocalTransport:
    """Runs cells in this process. Messages go through the wire format both ways,
    so values behave as with the sandbox: the code never shares tensors with the
    caller, and what cannot cross the boundary fails here too."""

    def __init__(self, cells):
        self.executor = Executor()
        self.cell_errors = {}
        for cell_id, source in cells:
            reply = self.executor.handle({"op": "exec", "cell": cell_id, "source": source})
            if not reply["ok"]:
                self.cell_errors[cell_id] = reply["error"]

    def request(self, msg, timeout=None):
        through = loads(dumps(msg)[HEADER.size:])
        return loads(dumps(self.executor.handle(through))[HEADER.size:])

    def define(self, source):
        reply = self.executor.handle({"op": "exec", "cell": "suite", "source": source})
        if not reply["ok"]:
            raise StudentError(reply["error"])

    def close(self):
        pass


class RemoteTransport:
    """Runs cells in a sandboxed worker, one by one, as a notebook would.

    After a timeout or a crash the worker is replaced by a fresh one that reruns
    the cells that had succeeded, so one bad test costs only itself. A cell that
    hangs or kills its worker is not run again.
    """

    def __init__(self, cells, limits: Limits, factory: WorkerFactory, forbidden=()):
        self.cells, self.limits, self.factory, self.forbidden = list(cells), limits, factory, list(forbidden)
        self.cell_errors = {}
        self.worker = None
        self.restarts = 0
        self._start()

    def _start(self):
        while True:
            self.worker = self.factory.new(self.limits, self.forbidden)
            if self._run_cells():
                return

    def _run_cells(self) -> bool:
        """Run the cells in a fresh worker; False if one hung or killed it."""
        for cell_id, source in self.cells:
            if self.cell_errors.get(cell_id, {}).get("fatal"):
                continue
            try:
                reply = self.worker.request({"op": "exec", "cell": cell_id, "source": source})
            except (WorkerTimeout, WorkerDied, ProtocolError) as err:
                kind = "ran past its time limit" if isinstance(err, WorkerTimeout) else f"failed: {err}"
                self.cell_errors[cell_id] = {"type": type(err).__name__, "fatal": True,
                                             "message": f"running this cell {kind}"}
                self.worker.kill()
                return False
            if not reply.get("ok"):
                self.cell_errors[cell_id] = reply.get("error", {})
        return True

    def request(self, msg, timeout=None):
        if self.worker is None or not self.worker.alive():
            self.restarts += 1
            try:
                self._start()
            except WorkerDied as err:
                raise SandboxFailure("the sandbox could not start a fresh worker") from None
        try:
            return self.worker.request(msg, timeout)
        except WorkerTimeout as err:
            self.worker = None
            raise StudentTimeout(f"your code did not finish in time: {err}") from None
        except ProtocolError as err:
            self.worker.kill()
            self.worker = None
            raise StudentCrashed(f"your code returned a value the grader cannot read ({err}): return tensors, "
                                 "numbers, strings, or lists, tuples and dicts of them") from None
        except WorkerDied as err:
            self.worker.kill()
            self.worker = None
            raise StudentCrashed(f"your code ended the grading process: {err}") from None

    def define(self, source):
        """Suite code run after the student's cells, now and after every restart."""
        self.cells.append(("suite", source))
        reply = self.request({"op": "exec", "cell": "suite", "source": source})
        if not reply.get("ok"):
            raise StudentError(reply.get("error", {}))

    def close(self):
        if self.worker is not None:
            self.worker.kill()
            self.worker = None


# --- the proxy ------------------------------------------------------------------------

class Student:
    """Attribute access names the notebook's top-level functions and classes."""

    def __init__(self, transport):
        self._transport = transport
        self._forbidden = None  # None: every API the worker reports counts; else only these

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return Ref(self, {"global": name})

    def has(self, name) -> bool:
        return name in self._request({"op": "has", "names": [name]})["value"]

    def define(self, source: str) -> None:
        """Run the suite's own (trusted) code in the student's namespace, e.g. a function
        for student code to differentiate; it is defined again if the worker restarts."""
        self._transport.define(source)

    def vjp(self, target, args, wrt, cotangents, kwargs=None):
        """Forward, then backward with `cotangents` (one per output, None to skip).
        Returns {"outputs", "grads" (one per index in wrt), "param_grads" (by name)}."""
        if isinstance(target, str):
            target = Ref(self, {"global": target})
        return self._request({"op": "vjp", "target": target._spec, "args": encode(tuple(args)),
                              "kwargs": encode(kwargs or {}), "wrt": list(wrt),
                              "cotangents": encode(list(cotangents))})["value"]

    def close(self):
        self._transport.close()

    # -- plumbing ------------------------------------------------------------------------
    def _request(self, msg):
        reply = self._transport.request(msg)
        if not isinstance(reply, dict):
            raise StudentCrashed("the grading process sent a malformed reply")
        used = [n for n in reply.get("forbidden") or [] if self._forbidden is None or n in self._forbidden]
        if used:
            raise ForbiddenAPI(used)
        if not reply.get("ok"):
            info = reply.get("error") if isinstance(reply.get("error"), dict) else {}
            if info.get("type") == "NameError":
                self._explain_missing(info)
            raise StudentError(info)
        return self._adopt(reply)

    def _explain_missing(self, info):
        """A name is missing because its cell failed: say which cell and why."""
        errors = getattr(self._transport, "cell_errors", {})
        for cell_id, err in errors.items():
            info["message"] = (f"{info.get('message', '')}; the answer cell '{cell_id}' failed with "
                               f"{err.get('type', 'an error')}: {err.get('message', '')}")[:400]
            break

    def _adopt(self, value):
        """Handles in a reply become Refs; everything else is plain data already."""
        if isinstance(value, dict):
            if "__handle__" in value and isinstance(value.get("__handle__"), int):
                return Ref(self, {"handle": value["__handle__"]}, type_name=str(value.get("__type__", "")))
            return {k: self._adopt(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._adopt(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._adopt(v) for v in value)
        return value


class Ref:
    """A function, class, object or attribute path on the student's side."""

    def __init__(self, student, spec, type_name=""):
        self._student, self._spec, self.type_name = student, spec, type_name

    @property
    def __remote_ref__(self):
        if "handle" not in self._spec or self._spec.get("path"):
            raise TypeError("only whole objects (not attribute paths) can be passed back to student code")
        return self._spec["handle"]

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return Ref(self._student, {**self._spec, "path": self._spec.get("path", []) + [name]})

    def __call__(self, *args, **kwargs):
        return self._student._request({"op": "call", "target": self._spec, "args": encode(args),
                                       "kwargs": encode(kwargs)})["value"]

    def with_inputs(self, *args, **kwargs):
        """Call, and also return the arguments as they are afterwards (in-place checks)."""
        reply = self._student._request({"op": "call", "target": self._spec, "args": encode(args),
                                        "kwargs": encode(kwargs), "echo_args": True})
        return reply["value"], reply["args"]

    def get(self):
        return self._student._request({"op": "get", "target": self._spec})["value"]

    # Arithmetic on student objects runs on the student's side (`a * b + 1` builds the
    # student's own expression); comparisons stay refused, see __eq__.
    def _operator(self, name, *args):
        return self._student._request({"op": "operator", "name": name, "args": encode(args)})["value"]

    def __add__(self, other): return self._operator("add", self, other)  # noqa: E704
    def __radd__(self, other): return self._operator("add", other, self)  # noqa: E704
    def __sub__(self, other): return self._operator("sub", self, other)  # noqa: E704
    def __rsub__(self, other): return self._operator("sub", other, self)  # noqa: E704
    def __mul__(self, other): return self._operator("mul", self, other)  # noqa: E704
    def __rmul__(self, other): return self._operator("mul", other, self)  # noqa: E704
    def __truediv__(self, other): return self._operator("truediv", self, other)  # noqa: E704
    def __rtruediv__(self, other): return self._operator("truediv", other, self)  # noqa: E704
    def __pow__(self, other): return self._operator("pow", self, other)  # noqa: E704
    def __rpow__(self, other): return self._operator("pow", other, self)  # noqa: E704
    def __matmul__(self, other): return self._operator("matmul", self, other)  # noqa: E704
    def __neg__(self): return self._operator("neg", self)  # noqa: E704

    def __bool__(self):
        # A handle is not a value: `expect(student.f(x))` must not pass on an object.
        raise TypeError("a student object has no truth value: compare data instead")

    def __eq__(self, other):
        raise TypeError("student objects cannot be compared: read their data with .get()")

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<student object {self.type_name or self._spec}>"
