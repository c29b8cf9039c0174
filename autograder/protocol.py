"""The wire format between the judge and the sandboxed worker.

A message is plain data: dicts with string keys, lists, tuples, strings,
numbers, booleans, None, torch dtypes and devices, and plain tensors. It travels
as one frame: an 8-byte length, a 4-byte header length, a JSON header that
describes the structure, then the raw bytes of every tensor. Decoding builds only
those types and checks every tensor's dtype, shape and byte count, so no pickle
is ever involved and nothing a student sends can run code in the judge.

This file is copied into the sandbox next to worker.py: it imports only the
standard library and torch.
"""
import json
import math
import struct

import torch

HEADER = struct.Struct("!Q")
_JSON_LEN = struct.Struct("!I")
MAX_MESSAGE = 256 * 2**20  # a reply larger than this is a student flooding the judge
MAX_HEADER = 2 * 2**20     # the structure is small; bulk data travels as tensor bytes
MAX_DEPTH = 64
TAGS = {"__tensor__", "__tuple__", "__dict__", "__dtype__", "__device__", "__int__", "__float__", "__complex__"}

DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


def dumps(obj) -> bytes:
    blobs = []
    header = json.dumps(_pack(obj, blobs, 0), allow_nan=True, separators=(",", ":")).encode()
    if len(header) > MAX_HEADER:
        raise ValueError(f"a value with {len(header)} bytes of structure is over the limit: "
                         "return tensors rather than long Python lists")
    body = _JSON_LEN.pack(len(header)) + header + b"".join(blobs)
    return HEADER.pack(len(body)) + body


def loads(body: bytes):
    try:
        (n,) = _JSON_LEN.unpack_from(body, 0)
        if n > MAX_HEADER:  # parsing millions of tiny JSON nodes costs the judge gigabytes
            raise ProtocolError(f"message structure of {n} bytes is over the {MAX_HEADER >> 20} MiB limit")
        header = json.loads(body[_JSON_LEN.size:_JSON_LEN.size + n])
        view = memoryview(body)[_JSON_LEN.size + n:]
        value, used = _unpack(header, view, 0, 0)
    except ProtocolError:
        raise
    except Exception as err:  # noqa: BLE001 - anything malformed is the sender's fault
        raise ProtocolError(f"malformed message ({type(err).__name__})") from None
    if used != len(view):
        raise ProtocolError("malformed message (trailing bytes)")
    return value


def _pack(obj, blobs, depth):
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj if abs(obj) < 2**53 else {"__int__": str(obj)}
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, complex):
        return {"__complex__": [repr(obj.real), repr(obj.imag)]}
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).removeprefix("torch.")}
    if isinstance(obj, torch.device):
        return {"__device__": str(obj)}
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        meta = {"__tensor__": [str(t.dtype).removeprefix("torch."), list(t.shape), str(t.device)]}
        if t.device.type != "meta":
            data = t.cpu().contiguous().reshape(-1)
            blobs.append(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
        return meta
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, blobs, depth + 1) for v in obj]}
    if isinstance(obj, list):
        return [_pack(v, blobs, depth + 1) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("dict keys must be strings")
        packed = {k: _pack(v, blobs, depth + 1) for k, v in obj.items()}
        # A one-key dict whose key is a tag would read back as that tag: wrap it.
        return {"__dict__": packed} if len(obj) == 1 and next(iter(obj)) in TAGS else packed
    raise TypeError(f"cannot send a value of type {type(obj).__name__}")


def _is_handle(obj):
    return set(obj) <= {"__handle__", "__type__"} and isinstance(obj.get("__handle__"), int)


def _unpack(node, view, offset, depth):
    if depth > MAX_DEPTH:
        raise ProtocolError("malformed message (nested too deeply)")
    if node is None or isinstance(node, (bool, str, int, float)):
        return node, offset
    if isinstance(node, list):
        out = []
        for v in node:
            item, offset = _unpack(v, view, offset, depth + 1)
            out.append(item)
        return out, offset
    if not isinstance(node, dict):
        raise ProtocolError("malformed message")
    if len(node) == 1:
        (tag, value), = node.items()
        if tag == "__tensor__":
            return _tensor(value, view, offset)
        if tag == "__tuple__":
            items, offset = _unpack(value, view, offset, depth + 1)
            return tuple(items), offset
        if tag == "__dict__":
            return _unpack_dict(value, view, offset, depth)
        if tag == "__dtype__":
            if value not in DTYPES:
                raise ProtocolError(f"unknown dtype {value!r}")
            return DTYPES[value], offset
        if tag == "__device__":
            return torch.device(str(value)), offset
        if tag == "__int__":
            return int(value), offset
        if tag == "__float__":
            return float(value), offset
        if tag == "__complex__":
            return complex(float(value[0]), float(value[1])), offset
    return _unpack_dict(node, view, offset, depth)


def _unpack_dict(node, view, offset, depth):
    if not isinstance(node, dict):
        raise ProtocolError("malformed message")
    out = {}
    for k, v in node.items():
        out[k], offset = _unpack(v, view, offset, depth + 1)
    return out, offset


def _tensor(meta, view, offset):
    dtype_name, shape, device = meta
    if dtype_name not in DTYPES or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ProtocolError("malformed tensor")
    dtype = DTYPES[dtype_name]
    if str(device) == "meta":
        return torch.empty(shape, dtype=dtype, device="meta"), offset
    numel = math.prod(shape)
    size = numel * torch.empty((), dtype=dtype).element_size()
    if offset + size > len(view):
        raise ProtocolError("malformed tensor (short data)")
    raw = bytearray(view[offset:offset + size])
    t = (torch.frombuffer(raw, dtype=torch.uint8) if size else torch.empty(0, dtype=torch.uint8))
    t = t.view(dtype).reshape(shape)
    device = torch.device(str(device))
    if device.type != "cpu":
        t = t.to(device)  # the judge and worker share the machine's devices
    return t, offset + size


def read_exactly(fd: int, n: int, read) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# --- encoding and decoding handles ------------------------------------------------
# Handles name objects that live in the worker (a student's module instance).

def encode(value):
    if isinstance(value, (list, tuple)):
        items = [encode(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    ref = getattr(value, "__remote_ref__", None) if not isinstance(value, torch.Tensor) else None
    if ref is not None:
        return {"__handle__": ref}
    return value


def decode(value, resolve_handle=None):
    if isinstance(value, dict):
        if _is_handle(value):
            return resolve_handle(value["__handle__"]) if resolve_handle else value
        return {k: decode(v, resolve_handle) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, resolve_handle) for v in value]
    if isinstance(value, tuple):
        return tuple(decode(v, resolve_handle) for v in value)
    return value
