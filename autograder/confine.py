"""Confine the current process: resource limits and a seccomp filter.

Standard library only: it runs in the judge's child before exec (no bubblewrap)
and inside the sandbox, in each worker that the zygote forks.
"""
import ctypes
import os
import resource
import struct

# --- seccomp -------------------------------------------------------------------
# A classic-BPF program, assembled here so that no compiler or library is needed.
_LD_ABS, _JEQ, _JSET, _JGE, _RET = 0x20, 0x15, 0x45, 0x35, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS = 1, 38
_AUDIT_ARCH_X86_64 = 0xC000003E
_NR = {"clone": 56, "fork": 57, "vfork": 58, "kill": 62, "ptrace": 101, "tkill": 200,
       "tgkill": 234, "socket": 41, "clone3": 435, "setsid": 112, "setpgid": 109,
       "process_vm_readv": 310, "process_vm_writev": 311, "rt_sigqueueinfo": 129,
       "rt_tgsigqueueinfo": 297, "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438,
       "process_madvise": 440, "kcmp": 312}
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
    # Process creation, and every way to reach into or signal another process
    # (pidfds included), are refused outright.
    for name in ("fork", "vfork", "ptrace", "setsid", "setpgid", "process_vm_readv", "process_vm_writev",
                 "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "process_madvise", "kcmp"):
        ins(_JEQ, _NR[name], deny, 0)
    ins(_JEQ, _NR["clone3"], nosys, 0)                # glibc falls back to clone()
    ins(_JEQ, _NR["clone"], "clone", 0)
    ins(_JEQ, _NR["socket"], "socket", 0)
    if own_pid is not None:
        for name in ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
            ins(_JEQ, _NR[name], "signal", 0)
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


def install_seccomp(program: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    prog = SockFprog(len(program) // 8, program)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "seccomp filter refused")



def apply_limits(limits: dict) -> None:
    """rlimits from a Limits-like dict: CPU seconds, memory, file size, open files.
    Memory is address space, or with `"memory_rlimit": "data"` (CUDA processes,
    whose driver reserves far more address space than it uses) the memory the
    process may write to: heap and private writable mappings."""
    memory = resource.RLIMIT_DATA if limits.get("memory_rlimit") == "data" else resource.RLIMIT_AS
    resource.setrlimit(memory, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def confine(limits: dict) -> None:
    """Everything a worker gets before it runs student code."""
    apply_limits(limits)
    install_seccomp(seccomp_filter(own_pid=os.getpid()))
