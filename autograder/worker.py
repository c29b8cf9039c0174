"""The untrusted side: runs one student's answer cells and answers the judge.

Started by sandbox.py inside the sandbox, as ``python -I worker.py IN_FD OUT_FD``
with a JSON configuration on argv[3]. It sees only this file, protocol.py, the
Python installation and a private /tmp. Everything it sends back is plain data
(see protocol.py); objects that are not data stay here and travel as handles.
Nothing here is trusted by the judge: a student can change any of it at run
time, and the judge treats every reply as the student's claim, nothing more.
"""
import importlib
import io
import json
import os
import sys
import traceback

import torch

try:  # imported by the judge for in-process grading
    from .protocol import HEADER, MAX_MESSAGE, decode, dumps, loads, read_exactly
except ImportError:  # run as a script inside the sandbox, next to protocol.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves this folder out
    from protocol import HEADER, MAX_MESSAGE, decode, dumps, loads, read_exactly

PRINT_LIMIT = 64 * 1024


class CappedOutput(io.TextIOBase):
    """Student prints: kept up to a limit, then dropped, so a flood costs nothing."""

    def __init__(self):
        self.size = 0

    def writable(self):
        return True

    def write(self, s):
        self.size += len(s)
        return len(s)


class Tripwires:
    """Wraps forbidden APIs so that a call is recorded (and still computed)."""

    def __init__(self, dotted_names):
        self.used = set()
        for dotted in dotted_names:
            self._wrap(dotted)

    def _wrap(self, dotted):
        module_name, _, attr = dotted.rpartition(".")
        owner = _resolve(module_name)
        if owner is None or not hasattr(owner, attr):
            return
        original = getattr(owner, attr)
        used = self.used

        if isinstance(original, type):  # a class: flag its construction
            init = original.__init__

            def __init__(self, *a, __init=init, **k):
                used.add(dotted)
                __init(self, *a, **k)
            original.__init__ = __init__
            return

        def tripwire(*args, **kwargs):
            used.add(dotted)
            return original(*args, **kwargs)
        try:
            setattr(owner, attr, tripwire)
        except (AttributeError, TypeError):
            pass

    def take(self):
        used = sorted(self.used)
        self.used.clear()
        return used


def _resolve(dotted):
    parts = dotted.split(".")
    try:
        obj = importlib.import_module(parts[0])
    except ImportError:
        return None
    for part in parts[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def is_data(value):
    if value is None or type(value) in (bool, int, float, str, complex):
        return True
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return True
    if isinstance(value, (torch.dtype, torch.device)):
        return True
    if type(value) in (list, tuple):
        return all(is_data(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_data(v) for k, v in value.items())
    return False


class Executor:
    """Runs cells in one namespace and answers requests about what they defined.

    The sandboxed worker wraps it in a pipe loop; the judge also uses it
    in-process to run the reference solution and to debug suites.
    """

    def __init__(self, forbidden=()):
        self.namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        self.objects = {}
        self.tripwires = Tripwires(forbidden) if forbidden else None

    def handle(self, msg):
        handler = getattr(self, "op_" + str(msg.get("op")), None)
        try:
            if handler is None:
                raise ValueError(f"unknown operation {msg.get('op')!r}")
            reply = handler(msg)
            reply["ok"] = True
        except BaseException as err:  # noqa: BLE001 - students raise anything, SystemExit included
            reply = {"ok": False, "error": _error_info(err)}
        reply["forbidden"] = self.tripwires.take() if self.tripwires else []
        return reply

    # -- values ----------------------------------------------------------------
    def wrap(self, value):
        """Data travels as is; any other object stays here behind a handle."""
        if type(value) in (torch.Tensor, torch.nn.Parameter):
            return value.detach().clone()
        if type(value) in (list, tuple):
            items = [self.wrap(v) for v in value]
            return items if type(value) is list else tuple(items)
        if isinstance(value, dict) and all(type(k) is str for k in value):  # state dicts are OrderedDicts
            return {k: self.wrap(v) for k, v in value.items()}
        if is_data(value):
            return value
        ref = len(self.objects) + 1
        self.objects[ref] = value
        return {"__handle__": ref, "__type__": type(value).__name__}

    def unwrap(self, value):
        return decode(value, resolve_handle=self.objects.__getitem__)

    def target(self, spec):
        if "global" in spec:
            name = spec["global"]
            if name not in self.namespace:
                raise NameError(f"name '{name}' is not defined")
            obj = self.namespace[name]
        else:
            obj = self.objects[spec["handle"]]
        for attr in spec.get("path", []):
            obj = getattr(obj, attr)
        return obj

    # -- operations ------------------------------------------------------------
    def op_exec(self, msg):
        code = compile(msg["source"], f"<cell {msg['cell']}>", "exec")
        exec(code, self.namespace)
        return {}

    # Operators a suite may apply to student objects (`value * 2`, `-value`), through
    # Python's own protocol: __add__, then the other side's __radd__, and so on.
    OPERATORS = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos", "abs"}

    def op_operator(self, msg):
        import operator
        if msg.get("name") not in self.OPERATORS:
            raise ValueError(f"operator {msg.get('name')!r} is not available")
        return {"value": self.wrap(getattr(operator, msg["name"])(*self.unwrap(msg["args"])))}

    def op_has(self, msg):
        return {"value": [n for n in msg["names"] if n in self.namespace]}

    def op_get(self, msg):
        return {"value": self.wrap(self.target(msg["target"]))}

    def op_call(self, msg):
        fn = self.target(msg["target"])
        args, kwargs = self.unwrap(msg["args"]), self.unwrap(msg["kwargs"])
        result = fn(*args, **kwargs)
        reply = {"value": self.wrap(result)}
        if msg.get("echo_args"):  # lets the judge see whether the inputs were changed in place
            reply["args"] = self.wrap(list(args))
        return reply

    def op_vjp(self, msg):
        """Forward with selected inputs requiring grad, then backward with the
        judge's cotangents; returns outputs, input grads and parameter grads."""
        fn = self.target(msg["target"])
        args = list(self.unwrap(msg["args"]))
        for i in msg["wrt"]:
            args[i] = args[i].detach().clone().requires_grad_(True)
        owner = self.objects.get(msg["target"].get("handle")) if "handle" in msg["target"] else None
        params = dict(owner.named_parameters()) if isinstance(owner, torch.nn.Module) else {}
        for p in params.values():
            p.grad = None
        outputs = fn(*args, **self.unwrap(msg["kwargs"]))
        flat = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        cotangents = self.unwrap(msg["cotangents"])
        pairs = [(o, c) for o, c in zip(flat, cotangents) if c is not None]
        torch.autograd.backward([o for o, _ in pairs], [c for _, c in pairs])
        grads = [args[i].grad for i in msg["wrt"]]
        return {"value": {"outputs": self.wrap(outputs), "grads": self.wrap(grads),
                          "param_grads": self.wrap({n: p.grad for n, p in params.items()})}}



class Worker:
    """The sandboxed process: an Executor behind two pipes."""

    def __init__(self, fd_in, fd_out, config):
        self.fd_in, self.fd_out = fd_in, fd_out
        self.executor = Executor(config.get("forbidden", []))

    def recv(self):
        (n,) = HEADER.unpack(read_exactly(self.fd_in, HEADER.size, os.read))
        return loads(read_exactly(self.fd_in, n, os.read))

    def send(self, reply):
        try:
            data = dumps(reply)
        except Exception as err:  # a value the protocol cannot carry
            data = dumps({"ok": False, "error": _error_info(err), "forbidden": reply.get("forbidden", [])})
        if len(data) > MAX_MESSAGE:
            data = dumps({"ok": False, "error": {"type": "ReplyTooLarge",
                                                   "message": f"a return value of {len(data)} bytes is over the limit"}})
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd_out, view):]

    def serve(self):
        self.send({"ok": True, "ready": True, "torch": str(torch.__version__)})
        while True:
            try:
                msg = self.recv()
            except EOFError:
                return
            self.send(self.executor.handle(msg))


def _error_info(err):
    tb = traceback.extract_tb(err.__traceback__)
    student_frames = [f for f in tb if f.filename.startswith("<cell")]
    where = f"{student_frames[-1].filename[1:-1]}, line {student_frames[-1].lineno}" if student_frames else ""
    return {"type": type(err).__name__, "message": str(err)[:500], "where": where}


def serve(fd_in, fd_out, config):
    """Be a worker: answer the judge on two pipes until it hangs up."""
    # The protocol owns its pipes; a student's prints go nowhere, whatever they do.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stdout = sys.stderr = CappedOutput()
    torch.set_num_threads(int(config.get("threads", 1)))
    torch.manual_seed(0)
    Worker(fd_in, fd_out, config).serve()


def zygote(sock_fd, scratch):
    """Fork one fresh, confined worker per request; never run student code here.

    Runs inside the sandbox with torch imported. Each child gets the judge's
    pipes, closes the control socket, starts its own session, takes its limits
    and seccomp filter, and only then serves. `scratch` (the sandbox's private
    /tmp) is emptied between students.
    """
    import ctypes
    import socket

    try:
        from .confine import confine
    except ImportError:
        from confine import confine

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no /proc/<pid>/mem for children
    for name in ("torch.nn", "torch.nn.functional", "math", "numpy"):
        importlib.import_module(name)
    _warm_up()
    control = socket.socket(fileno=sock_fd)
    children = {}
    control.send(json.dumps({"ready": True}).encode())
    while True:
        msg, fds, _, _ = socket.recv_fds(control, 65536, 4)
        if not msg:
            return
        req = json.loads(msg)
        for pid in [p for p, status in children.items() if status is None]:  # reap the finished
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children[pid] = _status(status)
        if req["op"] == "fork":
            if not _wipe(scratch):
                return  # leftovers we cannot remove: exit, and the judge starts a new sandbox
            pid = os.fork()
            if pid == 0:
                try:
                    control.close()
                    os.chdir(scratch)
                    os.setsid()
                    confine(req["limits"])
                    serve(fds[0], fds[1], req["config"])
                finally:
                    os._exit(0)
            for fd in fds:
                os.close(fd)
            children[pid] = None
            control.send(json.dumps({"pid": pid}).encode())
        elif req["op"] in ("kill", "wait"):
            pid = req["pid"]
            if pid in children and children[pid] is None:
                if req["op"] == "kill":
                    os.kill(pid, 9)
                _, status = os.waitpid(pid, 0)
                children[pid] = _status(status)
            control.send(json.dumps({"status": children.get(pid)}).encode())


def _warm_up():
    """Pay torch's first-call costs (dispatcher, autograd, serialization) once here
    rather than in every forked worker. One thread only: a thread pool must not
    exist when the zygote forks."""
    torch.set_num_threads(1)
    for dtype in (torch.float32, torch.float64):
        layer = torch.nn.Linear(4, 3).to(dtype)
        x = torch.randn(2, 5, 4, dtype=dtype, requires_grad=True)
        scores = layer(x) @ layer(x).transpose(-2, -1)
        mask = torch.ones(5, 5, dtype=torch.bool).tril()
        torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1).sum().backward()
    torch.ones(2, 2, device="meta").tril()
    loads(dumps({"x": torch.ones(2), "ok": True})[HEADER.size:])


def _status(status):
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _wipe(folder):
    """Empty `folder`, even of what a student made unreadable; True if it is empty."""
    for root, dirs, _ in os.walk(folder, topdown=True, onerror=None):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700, follow_symlinks=False)
            except OSError:
                pass
    for entry in os.scandir(folder):
        try:
            if entry.is_dir(follow_symlinks=False):
                _rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    return not os.listdir(folder)


def _rmtree(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def main():
    mode = sys.argv[1]
    if mode == "worker":
        serve(int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]))
    elif mode == "zygote":
        zygote(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
