"""Start a worker process for one submission, as isolated as this machine allows.

With bubblewrap (Debian, Ubuntu, GitHub's runners) the worker gets its own user,
PID, network, IPC and mount namespaces: it sees the Python installation, the
worker's two files and an empty /tmp, and nothing of the course (no autograder/,
solutions/, gradebook or other submissions) and no network. Without bubblewrap it
runs as a plain process and the judge warns loudly that isolation is reduced.

Either way, resource limits bound CPU time, memory, file sizes and open files; a
seccomp filter refuses to create processes (threads are fine), open internet
sockets or signal other processes; and the judge bounds wall time per call.
"""
import ctypes
import json
import os
import resource
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .protocol import HEADER, MAX_MESSAGE, ProtocolError, dumps, loads

HERE = Path(__file__).resolve().parent


@dataclass
class Limits:
    """Per-assignment limits; a suite's `LIMITS` dict overrides these fields."""
    call_seconds: float = 20.0          # wall time for one cell or one call
    startup_seconds: float = 60.0       # wall time to start Python and import torch
    cpu_seconds: int = 600              # CPU time for a whole worker
    memory_bytes: int = 6 * 2**30       # address space (torch reserves a lot of it)
    file_bytes: int = 16 * 2**20        # largest file a worker may write (in its /tmp)
    tmp_bytes: int = 64 * 2**20         # size of the worker's private /tmp
    open_files: int = 256
    threads: int = 2                    # torch intra-op threads

    @classmethod
    def from_dict(cls, values: dict | None) -> "Limits":
        return cls(**(values or {}))


class WorkerDied(Exception):
    """The worker exited or was killed (crash, os._exit, a limit)."""


class WorkerTimeout(Exception):
    """A call ran past its wall-time limit; the worker has been killed."""


# --- seccomp -------------------------------------------------------------------
# A classic-BPF program, assembled here so that no compiler or library is needed.
_LD_ABS, _JEQ, _JSET, _JGE, _RET = 0x20, 0x15, 0x45, 0x35, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS = 1, 38
_AUDIT_ARCH_X86_64 = 0xC000003E
_NR = {"clone": 56, "fork": 57, "vfork": 58, "kill": 62, "ptrace": 101, "tkill": 200,
       "tgkill": 234, "socket": 41, "clone3": 435, "setsid": 112, "setpgid": 109}
_CLONE_THREAD = 0x00010000
_AF_INET, _AF_INET6 = 2, 10


def seccomp_filter(own_pid: int | None = None) -> bytes:
    """Refuse fork/vfork/clone-without-CLONE_THREAD, ptrace, INET sockets, and
    (when own_pid is given) signals to any process but the worker itself."""
    prog = []  # (code, jt, jf, k) with symbolic jumps resolved below

    def ins(code, k, jt=0, jf=0):
        prog.append([code, jt, jf, k])

    deny, nosys, allow = "deny", "nosys", "allow"
    ins(_LD_ABS, 4)                                   # arch
    ins(_JEQ, _AUDIT_ARCH_X86_64, 0, allow)           # other architectures: no filter
    ins(_LD_ABS, 0)                                   # syscall number
    ins(_JGE, 0x40000000, deny, 0)                    # the x32 ABI: refuse outright
    for name in ("fork", "vfork", "ptrace", "setsid", "setpgid"):
        ins(_JEQ, _NR[name], deny, 0)
    ins(_JEQ, _NR["clone3"], nosys, 0)                # glibc falls back to clone()
    ins(_JEQ, _NR["clone"], "clone", 0)
    ins(_JEQ, _NR["socket"], "socket", 0)
    if own_pid is not None:
        for name in ("kill", "tkill"):
            ins(_JEQ, _NR[name], "signal", 0)
        ins(_JEQ, _NR["tgkill"], "signal", 0)
    ins(_RET, _ALLOW)
    labels = {"clone": len(prog)}
    ins(_LD_ABS, 16)                                  # clone flags (low 32 bits)
    ins(_JSET, _CLONE_THREAD, allow, deny)
    labels["socket"] = len(prog)
    ins(_LD_ABS, 16)                                  # socket domain
    ins(_JEQ, _AF_INET, deny, 0)
    ins(_JEQ, _AF_INET6, deny, allow)
    if own_pid is not None:
        labels["signal"] = len(prog)
        ins(_LD_ABS, 16)                              # target pid (0 = own group)
        ins(_JEQ, own_pid, allow, 0)
        ins(_JEQ, 0, allow, deny)
    labels["deny"] = len(prog)
    ins(_RET, _ERRNO | _EPERM)
    labels["nosys"] = len(prog)
    ins(_RET, _ERRNO | _ENOSYS)
    labels["allow"] = len(prog)
    ins(_RET, _ALLOW)

    out = b""
    for i, (code, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        assert 0 <= jt < 256 and 0 <= jf < 256
        out += struct.pack("HBBI", code, jt, jf, k)
    return out


def _install_seccomp(program: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    prog = SockFprog(len(program) // 8, program)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


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
    roots = {sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent)}
    return sorted(r for r in roots if r and os.path.isdir(r))


def _bwrap_command(exe: str, stage: Path, limits: Limits, device: str, seccomp_fd: int) -> list[str]:
    cmd = [exe, "--unshare-all", "--die-with-parent", "--new-session",
           "--hostname", "sandbox", "--cap-drop", "ALL"]
    for path in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    for path in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives"):
        cmd += ["--ro-bind-try", path, path]
    for root in _python_roots():
        cmd += ["--ro-bind", root, root]
    cmd += ["--ro-bind", str(stage), "/sandbox",
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
            "--chdir", "/tmp", "--seccomp", str(seccomp_fd)]
    if device.startswith("cuda"):
        for dev in sorted(Path("/dev").glob("nvidia*")):
            cmd += ["--dev-bind", str(dev), str(dev)]
        cmd += ["--ro-bind-try", "/proc/driver/nvidia", "/proc/driver/nvidia",
                "--ro-bind-try", "/sys", "/sys"]
    return cmd


# --- the worker handle -----------------------------------------------------------

class WorkerProcess:
    """One sandboxed worker: send a request, get a reply or an exception."""

    def __init__(self, limits: Limits, device: str = "cpu", forbidden: list[str] | None = None):
        self.limits = limits
        self.stage = Path(tempfile.mkdtemp(prefix="course-worker-"))
        for name in ("worker.py", "protocol.py"):
            shutil.copy(HERE / name, self.stage / name)
        os.chmod(self.stage, 0o755)

        to_worker_r, self.to_worker = os.pipe()
        self.from_worker, from_worker_w = os.pipe()
        config = json.dumps({"forbidden": forbidden or [], "threads": limits.threads, "device": device})
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "OMP_NUM_THREADS": str(limits.threads), "MKL_NUM_THREADS": str(limits.threads),
               "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONDONTWRITEBYTECODE": "1"}
        if device.startswith("cuda") and "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]

        exe = bubblewrap()
        pass_fds = [to_worker_r, from_worker_w]
        seccomp_r = None
        if exe:
            program = seccomp_filter()
            seccomp_r, seccomp_w = os.pipe()
            os.write(seccomp_w, program)
            os.close(seccomp_w)
            pass_fds.append(seccomp_r)
            worker_dir = "/sandbox"
            cmd = _bwrap_command(exe, self.stage, limits, device, seccomp_r)
            preexec = self._limits_only
        else:
            worker_dir = str(self.stage)
            cmd = []
            preexec = self._limits_and_seccomp
        cmd += [sys.executable, "-I", f"{worker_dir}/worker.py", str(to_worker_r), str(from_worker_w), config]
        self.proc = subprocess.Popen(cmd, pass_fds=pass_fds, env=env, cwd=self.stage if not exe else "/",
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=None if os.environ.get("COURSE_DEBUG_WORKER") else subprocess.DEVNULL,
                                     preexec_fn=preexec)
        for fd in [to_worker_r, from_worker_w] + ([seccomp_r] if seccomp_r is not None else []):
            os.close(fd)
        os.set_blocking(self.to_worker, False)
        hello = self._read(time.monotonic() + limits.startup_seconds)
        if not hello.get("ready"):
            self.kill()
            raise WorkerDied("the worker did not start")

    # Runs in the child between fork and exec: only async-signal-safe-ish work.
    def _limits_only(self):
        lim = self.limits
        resource.setrlimit(resource.RLIMIT_AS, (lim.memory_bytes, lim.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_bytes, lim.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim.open_files, lim.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setsid()

    def _limits_and_seccomp(self):
        self._limits_only()
        _install_seccomp(seccomp_filter(own_pid=os.getpid()))

    # -- I/O ------------------------------------------------------------------
    def request(self, message: dict, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.limits.call_seconds)
        self._write(dumps(message), deadline)
        return self._read(deadline)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self.to_worker, deadline, write=True)
            try:
                view = view[os.write(self.to_worker, view):]
            except BrokenPipeError:
                raise WorkerDied(self._death_reason()) from None

    def _read(self, deadline: float) -> dict:
        header = self._read_exactly(HEADER.size, deadline)
        (n,) = HEADER.unpack(header)
        if n > MAX_MESSAGE:
            self.kill()
            raise ProtocolError(f"a reply of {n} bytes is over the {MAX_MESSAGE >> 20} MiB limit")
        reply = loads(self._read_exactly(n, deadline))
        if not isinstance(reply, dict):
            raise ProtocolError("the worker's reply is not a message")
        return reply

    def _read_exactly(self, n: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            self._wait(self.from_worker, deadline)
            chunk = os.read(self.from_worker, min(n - got, 1 << 20))
            if not chunk:
                raise WorkerDied(self._death_reason())
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _wait(self, fd: int, deadline: float, write: bool = False) -> None:
        remaining = deadline - time.monotonic()
        ready = select.select([], [fd], [], max(remaining, 0))[1] if write else \
            select.select([fd], [], [], max(remaining, 0))[0]
        if not ready:
            self.kill()
            raise WorkerTimeout("no answer within the time limit")

    def _death_reason(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "the worker stopped answering"
        self.close()
        if code < 0:
            import signal
            name = signal.Signals(-code).name
            hint = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed: memory or time limit)",
                    "SIGXFSZ": " (file size limit)", "SIGSEGV": " (crashed)"}.get(name, "")
            return f"the worker was ended by {name}{hint}"
        return f"the worker exited with status {code}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self) -> None:
        for fd in (self.to_worker, self.from_worker):
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_worker = self.from_worker = -1
        shutil.rmtree(self.stage, ignore_errors=True)


def warn_if_reduced_isolation() -> None:
    message = isolation_warning()
    if message:
        warnings.warn(message, stacklevel=2)
