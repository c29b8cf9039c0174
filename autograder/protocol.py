"""The wire format between the judge and the sandboxed worker.

Every message is a length-prefixed ``torch.save`` of plain data: dicts, lists,
tuples, strings, numbers, booleans, None and plain tensors. The judge reads what
the worker sends with ``torch.load(weights_only=True)``, which refuses anything
else (tensor subclasses, custom classes, code), so nothing a student writes can
run in the judge by being unpickled.

This file is copied into the sandbox next to worker.py: it imports only the
standard library and torch.
"""
import io
import os
import struct

import torch

HEADER = struct.Struct("!Q")
MAX_MESSAGE = 256 * 2**20  # a reply larger than this is a student flooding the judge


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


def dumps(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    return HEADER.pack(len(data)) + data


def loads(data: bytes):
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:  # weights_only raises UnpicklingError and friends
        if os.environ.get("COURSE_DEBUG_WORKER"):
            raise
        raise ProtocolError(f"unreadable value ({type(err).__name__})") from None


def read_exactly(fd: int, n: int, read) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# --- values that are not plain data -----------------------------------------
# Handles name objects that live in the worker (a student's module instance);
# dtypes and devices travel as tagged strings.

def encode(value):
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, (list, tuple)):
        items = [encode(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    ref = getattr(value, "__remote_ref__", None)
    if ref is not None:
        return {"__handle__": ref}
    return value


def decode(value, resolve_handle=None):
    if isinstance(value, dict):
        if set(value) == {"__dtype__"}:
            return getattr(torch, value["__dtype__"])
        if set(value) == {"__device__"}:
            return torch.device(value["__device__"])
        if set(value) == {"__handle__"}:
            return resolve_handle(value["__handle__"]) if resolve_handle else value
        return {k: decode(v, resolve_handle) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, resolve_handle) for v in value]
    if isinstance(value, tuple):
        return tuple(decode(v, resolve_handle) for v in value)
    return value
