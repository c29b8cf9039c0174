"""Start workers for submissions, as isolated as this machine allows.

With bubblewrap (Debian, Ubuntu, GitHub's runners) workers get their own user,
PID, network, IPC and mount namespaces: they see the Python installation, the
worker's files and an empty /tmp, and nothing of the course (no autograder/,
solutions/, gradebook or other submissions) and no network. Without bubblewrap
they run as plain processes and the judge warns loudly that isolation is reduced.

Either way each worker runs under resource limits (CPU time, memory, file size,
open files) and a seccomp filter that refuses to create processes (threads are
fine), open internet sockets, trace or signal other processes; the judge bounds
the wall time of every call.

Python plus torch takes seconds to start, so a *zygote* (inside the same
sandbox) imports torch once and forks one fresh worker per submission, then
confines it; a worker never outlives its submission and never runs two
students' code. The zygote itself only ever runs the course's own code.

This module imports torch (through the wire protocol) only on first use, so
that a command can start its zygotes before paying for torch itself.
"""
import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from .confine import apply_limits, confine, seccomp_filter

HERE = Path(__file__).resolve().parent
SANDBOX_FILES = ("worker.py", "protocol.py", "confine.py")


@dataclass
class Limits:
    """Per-assignment limits; a suite's [limits] table overrides these fields."""
    call_seconds: float = 20.0          # wall time for one cell or one call
    startup_seconds: float = 60.0       # wall time to start Python and import torch
    cpu_seconds: int = 600              # CPU time for a whole worker
    memory_bytes: int = 6 * 2**30       # address space (torch reserves a lot of it)
    file_bytes: int = 16 * 2**20        # largest file a worker may write (in its /tmp)
    tmp_bytes: int = 64 * 2**20         # size of the sandbox's private /tmp
    open_files: int = 256
    threads: int = 1                    # torch intra-op threads per worker
    notebook_seconds: float = 600.0     # wall time to grade one notebook; past it, a grader error

    @classmethod
    def from_dict(cls, values: dict | None) -> "Limits":
        return cls(**(values or {}))


def protocol():
    from . import protocol as wire  # imports torch: see the module's docstring
    return wire


class WorkerDied(Exception):
    """The worker exited or was killed (crash, os._exit, a limit)."""


class WorkerTimeout(Exception):
    """A call ran past its wall-time limit; the worker has been killed."""


# --- bubblewrap ----------------------------------------------------------------

@lru_cache(maxsize=None)
def bubblewrap() -> str | None:
    """The bwrap binary, if present and able to create namespaces here."""
    exe = shutil.which("bwrap")
    if exe is None or os.environ.get("COURSE_NO_BWRAP") == "1":
        return None
    probe = subprocess.run([exe, "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True)
    return exe if probe.returncode == 0 else None


def isolation_warning() -> str | None:
    if bubblewrap():
        return None
    return ("WARNING: bubblewrap is not available, so student code runs without filesystem and "
            "network isolation (resource limits and the seccomp filter still apply). "
            "Install it (apt-get install bubblewrap) before grading real submissions.")


def _python_roots() -> list[str]:
    """Folders the worker's Python needs: the installation and the virtualenv."""
    roots = {sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent),
             str(Path(_python()).parent.parent)}
    return sorted(r for r in roots if r and os.path.isdir(r))


def _python() -> str:
    """The interpreter, as an absolute path with no `..` (bwrap cannot follow those)."""
    return os.path.normpath(os.path.abspath(sys.executable))


# Paths the sandbox lays its own folders over: a Python installation or virtualenv
# under one of them (a checkout in /tmp, say) is mounted elsewhere instead.
COVERED = ("/tmp", "/dev", "/proc", "/sandbox", "/python")


def _python_mounts() -> list[tuple[str, str]]:
    """(host folder, folder inside the sandbox) for each Python root. A root under a
    covered path moves to /python/N: a virtualenv finds itself from the interpreter's
    path (pyvenv.cfg beside it), so it works from anywhere."""
    mounts = []
    for i, root in enumerate(_python_roots()):
        covered = any(root == c or root.startswith(c + "/") for c in COVERED)
        mounts.append((root, f"/python/{i}" if covered else root))
    return mounts


def _python_inside() -> str:
    """The interpreter's path as the sandbox sees it."""
    python = _python()
    host, inside = max(((h, i) for h, i in _python_mounts() if python.startswith(h + "/")),
                       key=lambda m: len(m[0]), default=("", ""))
    return inside + python[len(host):] if host else python


def _bwrap_command(exe: str, stage: Path, limits: Limits, device: str) -> list[str]:
    cmd = [exe, "--unshare-all", "--die-with-parent", "--new-session",
           "--hostname", "sandbox", "--cap-drop", "ALL"]
    for path in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    for path in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives"):
        cmd += ["--ro-bind-try", path, path]
    for root, inside in _python_mounts():
        cmd += ["--ro-bind", root, inside]
    cmd += ["--ro-bind", str(stage), "/sandbox", "--proc", "/proc", "--dev", "/dev",
            "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    if device.startswith("cuda"):
        for dev in sorted(Path("/dev").glob("nvidia*")):
            cmd += ["--dev-bind", str(dev), str(dev)]
        cmd += ["--ro-bind-try", "/proc/driver/nvidia", "/proc/driver/nvidia", "--ro-bind-try", "/sys", "/sys"]
    # Last, once every mount point exists: only /tmp stays writable. The root and
    # /dev are tmpfs that would otherwise carry files from one worker to the next.
    return cmd + ["--remount-ro", "/dev", "--remount-ro", "/"]


def rlimits(limits: Limits, device: str, **overrides) -> dict:
    """What `apply_limits` sets for a process of this device (see its docstring)."""
    return {**asdict(limits), "memory_rlimit": "data" if device.startswith("cuda") else "address_space",
            **overrides}


def _stage() -> Path:
    """A folder holding the files the sandbox may see (the course's own code only),
    and scratch/, the workers' working folder when there is no private /tmp."""
    stage = Path(tempfile.mkdtemp(prefix="course-worker-"))
    for name in SANDBOX_FILES:
        shutil.copy(HERE / name, stage / name)
    (stage / "scratch").mkdir()
    os.chmod(stage, 0o755)
    return stage


def _scratch(stage: Path) -> str:
    """What the zygote empties between students: its private /tmp, or scratch/."""
    return "/tmp" if bubblewrap() else str(stage / "scratch")


def _worker_env(limits: Limits, device: str) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": str(limits.threads), "MKL_NUM_THREADS": str(limits.threads),
           "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONDONTWRITEBYTECODE": "1"}
    if device.startswith("cuda") and "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return env


def _launch(mode_args: list[str], pass_fds: list[int], limits: Limits, device: str, stage: Path,
            preexec, bwrap_extra: list[str] = ()) -> subprocess.Popen:
    exe = bubblewrap()
    if exe:
        cmd, worker_dir, cwd = _bwrap_command(exe, stage, limits, device) + list(bwrap_extra), "/sandbox", "/"
        python = _python_inside()
    else:  # no private /tmp: workers get a scratch folder of their own instead
        cmd, worker_dir, cwd, python = [], str(stage), str(stage / "scratch"), _python()
    cmd += [python, "-I", f"{worker_dir}/worker.py", *mode_args]
    debug = os.environ.get("COURSE_DEBUG_WORKER")
    return subprocess.Popen(cmd, pass_fds=pass_fds, env=_worker_env(limits, device), cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=None if debug else subprocess.DEVNULL, preexec_fn=preexec)


# --- a channel to one worker -------------------------------------------------------

class Channel:
    """Length-prefixed messages over two pipes, with a deadline on every call."""

    def __init__(self, to_worker: int, from_worker: int, limits: Limits):
        self.to_worker, self.from_worker, self.limits = to_worker, from_worker, limits
        os.set_blocking(self.to_worker, False)
        self.dead = False

    def _await_ready(self) -> None:
        """A new worker says hello once it has started: wait for that, or give up."""
        if not self._read(time.monotonic() + self.limits.startup_seconds).get("ready"):
            self.kill()
            raise WorkerDied("the worker did not start")

    def request(self, message: dict, timeout: float | None = None) -> dict:
        if self.dead:
            raise WorkerDied("the worker has already ended")
        deadline = time.monotonic() + (timeout or self.limits.call_seconds)
        self._write(protocol().dumps(message), deadline)
        return self._read(deadline)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self.to_worker, deadline, write=True)
            try:
                view = view[os.write(self.to_worker, view):]
            except BrokenPipeError:
                raise WorkerDied(self._death()) from None

    def _read(self, deadline: float) -> dict:
        wire = protocol()
        (n,) = wire.HEADER.unpack(self._read_exactly(wire.HEADER.size, deadline))
        if n > wire.MAX_MESSAGE:
            self.kill()
            raise wire.ProtocolError(f"a reply of {n} bytes is over the {wire.MAX_MESSAGE >> 20} MiB limit")
        reply = wire.loads(self._read_exactly(n, deadline))
        if not isinstance(reply, dict):
            raise wire.ProtocolError("the worker's reply is not a message")
        return reply

    def _read_exactly(self, n: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            self._wait(self.from_worker, deadline)
            chunk = os.read(self.from_worker, min(n - got, 1 << 20))
            if not chunk:
                raise WorkerDied(self._death())
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _wait(self, fd: int, deadline: float, write: bool = False) -> None:
        remaining = max(deadline - time.monotonic(), 0)
        ready = (select.select([], [fd], [], remaining)[1] if write
                 else select.select([fd], [], [], remaining)[0])
        if not ready:
            self.kill()
            raise WorkerTimeout("no answer within the time limit")

    def _death(self) -> str:
        status = self._exit_status()
        self.kill()
        return describe_exit(status)

    def alive(self) -> bool:
        return not self.dead

    def close_pipes(self) -> None:
        for fd in (self.to_worker, self.from_worker):
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_worker = self.from_worker = -1
        self.dead = True


def describe_exit(status: int | None) -> str:
    if status is None:
        return "the worker stopped answering"
    if status < 0:
        name = signal.Signals(-status).name
        hint = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed: memory or time limit)",
                "SIGXFSZ": " (file size limit)", "SIGSEGV": " (crashed)"}.get(name, "")
        return f"the worker was ended by {name}{hint}"
    return f"the worker exited with status {status}"


class WorkerProcess(Channel):
    """A worker started as its own process (when no zygote is wanted)."""

    def __init__(self, limits: Limits, device: str = "cpu", forbidden: list[str] | None = None):
        self.stage = _stage()
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        config = json.dumps({"forbidden": forbidden or [], "threads": limits.threads})
        lim, fds, bwrap_extra = rlimits(limits, device), [to_r, from_w], []
        if bubblewrap():
            # bwrap installs the filter itself, once the namespaces are set up.
            seccomp_r, seccomp_w = os.pipe()
            os.write(seccomp_w, seccomp_filter())
            os.close(seccomp_w)
            fds.append(seccomp_r)
            bwrap_extra = ["--seccomp", str(seccomp_r)]

            def preexec():
                apply_limits(lim)
                os.setsid()
        else:
            def preexec():
                os.setsid()
                confine(lim)
        self.proc = _launch(["worker", str(to_r), str(from_w), config], fds, limits, device, self.stage,
                            preexec, bwrap_extra)
        for fd in fds:
            os.close(fd)
        super().__init__(to_w, from_r, limits)
        self._await_ready()

    def _exit_status(self):
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close_pipes()
        shutil.rmtree(self.stage, ignore_errors=True)


# --- the zygote ----------------------------------------------------------------------

class Zygote:
    """A sandboxed process with torch imported that forks one worker per request.

    Starting one returns at once; the first fork waits until it is ready, so the
    caller can do other work (import torch itself) while the zygote boots."""

    def __init__(self, limits: Limits, device: str = "cpu"):
        self.stage = _stage()
        self.live = set()  # pids of this zygote's workers the judge has not ended yet
        self.owner, self.ready, self.startup_seconds = os.getpid(), False, limits.startup_seconds
        self.device = device
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        zygote_limits = rlimits(limits, device, cpu_seconds=10**6, memory_bytes=max(limits.memory_bytes, 8 * 2**30))

        def preexec():
            apply_limits(zygote_limits)
            os.setsid()
        self.proc = _launch(["zygote", str(theirs.fileno()), _scratch(self.stage)], [theirs.fileno()], limits,
                            device, self.stage, preexec)
        theirs.close()

    def _await_ready(self) -> None:
        self.control.settimeout(self.startup_seconds)
        try:
            hello = json.loads(self.control.recv(4096) or b"{}")
        except (OSError, ValueError):
            hello = {}
        self.control.settimeout(30)
        if not hello.get("ready"):
            raise WorkerDied("the zygote did not start (set COURSE_DEBUG_WORKER=1 to see why)")
        self.ready = True

    def alive(self) -> bool:
        if os.getpid() != self.owner:  # a process forked from the owner cannot wait for it;
            return True                # a dead zygote shows at its next request instead
        return self.proc.poll() is None

    def _ask(self, message: dict, fds=()) -> dict:
        socket.send_fds(self.control, [json.dumps(message).encode()], list(fds))
        reply = self.control.recv(4096)
        if not reply:
            raise WorkerDied("the zygote is gone")
        return json.loads(reply)

    def fork(self, limits: Limits, forbidden: list[str] | None = None) -> "ForkedWorker":
        if not self.ready:
            self._await_ready()
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        try:
            reply = self._ask({"op": "fork", "limits": rlimits(limits, self.device),
                               "config": {"forbidden": forbidden or [], "threads": limits.threads}},
                              fds=[to_r, from_w])
        finally:
            os.close(to_r)
            os.close(from_w)
        return ForkedWorker(self, reply["pid"], to_w, from_r, limits)

    def close(self) -> None:
        try:
            self.control.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.stage, ignore_errors=True)


class ForkedWorker(Channel):
    def __init__(self, zygote: Zygote, pid: int, to_w: int, from_r: int, limits: Limits):
        self.zygote, self.pid = zygote, pid
        zygote.live.add(pid)
        super().__init__(to_w, from_r, limits)
        self._await_ready()

    def _exit_status(self):
        try:
            return self.zygote._ask({"op": "wait", "pid": self.pid}).get("status")
        except (OSError, ValueError, WorkerDied):
            return None

    def kill(self) -> None:
        if not self.dead:
            try:
                self.zygote._ask({"op": "kill", "pid": self.pid})
            except (OSError, ValueError, WorkerDied):
                pass
        self.zygote.live.discard(self.pid)
        self.close_pipes()


class WorkerFactory:
    """Hands out fresh workers, forked from zygotes when possible.

    A zygote hosts one live worker at a time, so that it can empty its scratch
    folder before every fork: a worker never sees files of the one before it.
    Grading forks sequentially and needs one zygote; concurrent workers (tests
    that keep several students open) get a zygote each. A class graded by N
    forked processes hands N zygotes over to them, one each (`hand_over`, `adopt`).
    """

    def __init__(self, device: str = "cpu", use_zygote: bool = True):
        self.device, self.use_zygote = device, use_zygote and os.environ.get("COURSE_NO_ZYGOTE") != "1"
        self.zygotes = []
        atexit.register(self.close)

    def prestart(self, limits: Limits, count: int = 1) -> None:
        """Start zygotes up to `count` without waiting for them."""
        while self.use_zygote and len(self.zygotes) < count:
            self.zygotes.append(Zygote(limits, self.device))

    def hand_over(self, limits: Limits, count: int) -> list["Zygote"]:
        """`count` zygotes no longer this factory's: for judge processes about to be
        forked, one each. Zygotes started early (`prestart`) and never used go first;
        one this process has forked workers from stays here (its state is this
        process's). The caller closes them once those processes are done."""
        fresh = [z for z in self.zygotes if not z.ready and not z.live][:count]
        self.zygotes = [z for z in self.zygotes if z not in fresh]
        return fresh + [Zygote(limits, self.device) for _ in range(count - len(fresh))] if self.use_zygote else []

    def adopt(self, zygote: "Zygote | None") -> None:
        """In a forked judge process: use this zygote, and none of the parent's."""
        self.zygotes = [zygote] if zygote is not None else []

    def new(self, limits: Limits, forbidden: list[str] | None = None):
        if not self.use_zygote:
            return WorkerProcess(limits, self.device, forbidden)
        for _ in range(2):
            self.zygotes = [z for z in self.zygotes if z.alive()]
            zygote = next((z for z in self.zygotes if not z.live), None)
            if zygote is None:
                zygote = Zygote(limits, self.device)
                self.zygotes.append(zygote)
            try:
                return zygote.fork(limits, forbidden)
            except (WorkerDied, OSError, ValueError):
                # The zygote refuses to fork onto a scratch folder it could not
                # empty (or died, or never started): the next worker gets a
                # brand-new sandbox.
                zygote.close()
                self.zygotes.remove(zygote)
        raise WorkerDied("could not start a worker")

    def close(self) -> None:
        for zygote in self.zygotes:
            zygote.close()
        self.zygotes = []


@lru_cache(maxsize=None)
def worker_factory(device: str) -> WorkerFactory:
    """One factory per process and device, shared by the notebooks it grades."""
    return WorkerFactory(device)


def likely_device(device: str) -> str:
    """`auto` resolved without importing torch, to start zygotes early; the judge
    resolves it for real, and a zygote started for the wrong device goes unused."""
    if device == "auto":
        return "cuda" if os.path.exists("/dev/nvidiactl") else "cpu"
    return device


def forks_judges(device: str) -> bool:
    """Whether pool processes are forked from this one (with torch, pytest and the
    zygotes it started) or spawned afresh. On CUDA they are spawned: checking for
    a GPU initialises the CUDA driver, which a forked child cannot use."""
    return not device.startswith("cuda")


def zygotes_to_start(jobs: int, device: str) -> int:
    """How many zygotes a command should start before grading `jobs` at a time."""
    return jobs if jobs == 1 or forks_judges(device) else 0
