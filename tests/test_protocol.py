"""The judge-worker wire format: exact round trips, and refusal of anything else."""
import math

import pytest
import torch

from autograder.protocol import HEADER, MAX_DEPTH, ProtocolError, dumps, loads


def roundtrip(value):
    return loads(dumps(value)[HEADER.size:])


@pytest.mark.parametrize("value", [
    None, True, False, 0, -3, 2**70, 1.5, float("-inf"), 1 + 2j, "text", "", torch.float64,
    torch.device("cpu"), (1, [2, (3,)]), [], {}, {"a": [1, {"b": None}]},
    {"__tensor__": 1}, {"__handle__": 3, "__type__": "SelfAttention"},
], ids=repr)
def test_plain_values_round_trip_with_their_types(value):
    out = roundtrip(value)
    assert out == value and type(out) is type(value)


def test_nan_round_trips():
    assert math.isnan(roundtrip(float("nan")))


@pytest.mark.parametrize("tensor", [
    torch.randn(3, 4), torch.randn(4, 3).t(), torch.ones(2, dtype=torch.bool), torch.tensor(3.0),
    torch.randn(2, 3, dtype=torch.bfloat16), torch.randn(2, dtype=torch.float16), torch.empty(0, 3),
    torch.arange(6, dtype=torch.int64).reshape(2, 3), torch.randn(3, dtype=torch.complex64),
    torch.randn(5, requires_grad=True),
], ids=lambda t: f"{t.dtype}-{tuple(t.shape)}")
def test_tensors_round_trip_exactly(tensor):
    out = roundtrip(tensor)
    assert type(out) is torch.Tensor and out.dtype == tensor.dtype and out.shape == tensor.shape
    assert torch.equal(out, tensor.detach()) and not out.requires_grad


def test_meta_tensors_keep_shape_and_device():
    out = roundtrip(torch.empty(4, 5, device="meta"))
    assert out.device.type == "meta" and out.shape == (4, 5)


def test_tensor_subclasses_arrive_as_plain_tensors():
    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True
    out = roundtrip(torch.zeros(3).as_subclass(Liar))
    assert type(out) is torch.Tensor and not torch.equal(out, torch.ones(3))


@pytest.mark.parametrize("value", [object(), {1: "int key"}, b"bytes", {"f": print}],
                         ids=["object", "int-key", "bytes", "function"])
def test_unsupported_values_are_refused_when_sent(value):
    with pytest.raises((TypeError, ValueError)):
        dumps(value)


def test_deep_nesting_is_refused():
    value = []
    for _ in range(MAX_DEPTH + 5):
        value = [value]
    with pytest.raises(ValueError):
        dumps(value)


def body(header: bytes, data: bytes = b"") -> bytes:
    return len(header).to_bytes(4, "big") + header + data


@pytest.mark.parametrize("raw", [
    b"",
    body(b"{}{}"),
    body(b'{"__tensor__":["float32",[1000],"cpu"]}', b"\0" * 16),
    body(b'{"__dtype__":"object"}'),
    body(b'{"__tensor__":["float32",[-1],"cpu"]}'),
    body(b"[]", b"trailing"),
    body(b'{"__tuple__": 3.5}'),
], ids=["empty", "bad-json", "short-tensor-data", "unknown-dtype", "negative-shape", "trailing-bytes",
        "bad-tuple"])
def test_malformed_messages_are_rejected(raw):
    with pytest.raises(ProtocolError):
        loads(raw)
