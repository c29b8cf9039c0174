"""Helpers for hidden suites: checks whose messages are safe to show students.

A failing plain ``assert`` in a suite shows the student only the test's
description (its docstring), never the assertion's text, which could hold
reference values. Raise ``Feedback`` (or use the checks below) to show a message:
write it for the student, without reference values.
"""
import math
import re
import types

import pytest
import torch

from .student import Ref


class Feedback(AssertionError):
    """A failed check whose message is written for the student."""


def expect(condition, message: str) -> None:
    if not condition:
        raise Feedback(message)


def component(grade_id: str, weight: float = 1.0):
    """Mark a test (or a module, via `pytestmark`) as grading one component."""
    return pytest.mark.component(grade_id)


def spec(*quotes: str):
    """Mark a test with the sentences of the student's specification that state the
    property it grades (each quote appears in the notebook's Markdown before the
    component's test cell; `*`, backticks, `$` and backslashes are ignored). A test
    checks every suite test has one: nothing is graded that the spec does not say."""
    return pytest.mark.spec(*quotes)


def normal_text(text: str) -> str:
    """Text as `spec` quotes are compared: lower case, no Markdown or TeX marks, single spaces."""
    return " ".join(re.sub(r"[*`$\\]", "", text).lower().split())


def gate(grade_id: str):
    """Decorate `check(student)` as the gate of a component: a quick test that the
    answer really attempts the task (weights form a distribution that depends on
    the input, a mask has both values...). Until it passes, every test of the
    component fails with its message, so that an answer returning zeros or a
    constant earns nothing from the properties it satisfies trivially (masking
    equals removal, inputs unchanged, causality). A gate must hold for every
    correct answer; the judge runs it once per notebook."""
    def mark(check):
        check.gate_for = grade_id
        return check
    return mark


def gates_in(module) -> dict:
    """A suite module's gates, by the component they guard."""
    return {check.gate_for: check for check in vars(module).values()
            if isinstance(check, types.FunctionType) and "gate_for" in vars(check)}


def assert_tensor(actual, what: str, shape=None, dtype=None, device=None) -> None:
    expect(isinstance(actual, torch.Tensor), f"{what} should be a tensor, got {type(actual).__name__}")
    if shape is not None:
        expect(tuple(actual.shape) == tuple(shape),
               f"{what} should have shape {tuple(shape)}, got {tuple(actual.shape)}")
    if dtype is not None:
        expect(actual.dtype == dtype, f"{what} should keep dtype {dtype}, got {actual.dtype}")
    if device is not None:
        expect(actual.device.type == torch.device(device).type,
               f"{what} should be on {torch.device(device).type}, got {actual.device.type}")


def assert_close(actual, expected: torch.Tensor, what: str, atol=1e-5, rtol=1e-5) -> None:
    """Shape, dtype, finiteness and values; the message gives the error size only."""
    assert_tensor(actual, what, shape=expected.shape, dtype=expected.dtype)
    actual = actual.to(expected.device)
    expect(not torch.isnan(actual).any() or torch.isnan(expected).any(), f"{what} contains NaN")
    if not torch.allclose(actual, expected, atol=atol, rtol=rtol, equal_nan=True):
        err = (actual.double() - expected.double()).abs().nan_to_num(float("inf")).max().item()
        raise Feedback(f"{what} has wrong values (largest absolute error {err:.3g}, tolerance {atol:g})")


def expect_defined(student, name: str) -> None:
    expect(student.has(name), f"{name} is not defined: define it at the top level of its answer cell, "
                              "with exactly this name")


def expect_function(student, name: str, signature: str) -> None:
    """`name` is a top-level function of the student's: `def name<signature>`."""
    expect_defined(student, name)
    obj = getattr(student, name).get()
    expect(isinstance(obj, Ref) and obj.type_name == "function",
           f"{name} should be a function (def {name}{signature}), got {describe(obj)}")


def expect_module_class(student, name: str, *args) -> None:
    """`name` is a top-level nn.Module subclass that `name(*args)` constructs."""
    expect_defined(student, name)
    cls = getattr(student, name).get()
    expect(isinstance(cls, Ref) and cls.type_name != "function",
           f"{name} should be a class (class {name}(nn.Module)), got {describe(cls)}")
    student.torch.nn.ModuleList([getattr(student, name)(*args)])  # raises "... is not a Module subclass"


def attention(q, k, v, mask=None):
    """Scaled dot-product attention written out, the specification suites compare
    with: (output, weights), where a query whose mask row is all False gets zero
    weights and a zero output (PyTorch's own gives NaN there)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ v, weights


def describe(value) -> str:
    """What a student's value is, for a message: its kind, never its contents."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"an object ({value.type_name})" if isinstance(value, Ref) else type(value).__name__


def expect_pair(result, call: str, names=("output", "weights")):
    """`call` returned a pair of tensors: return them, or fail with a message."""
    expect(isinstance(result, (tuple, list)) and len(result) == 2,
           f"{call} should return a tuple ({names[0]}, {names[1]}), got {describe(result)}")
    first, second = result
    assert_tensor(first, f"the {names[0]}")
    assert_tensor(second, "the weights" if names[1] == "weights" else f"the {names[1]}")
    return first, second


def twin_modules(student, reference, class_name, *args, dtype=None, device=None, grad=False, **kwargs):
    """A student module holding the weights of a fresh reference module of the same
    class: (student, reference, weights). Without `grad`, parameters do not require
    grad, so that outputs come back as plain tensors."""
    ref = getattr(reference, class_name)(*args, **kwargs)
    stu = getattr(student, class_name)(*args, **kwargs)
    if not grad:
        ref, stu = ref.requires_grad_(False), stu.requires_grad_(False)
    if dtype is not None:
        ref, stu = ref.to(dtype), stu.to(dtype)
    if device is not None:
        ref, stu = ref.to(device), stu.to(device)
    weights = ref.state_dict()
    stu.load_state_dict(weights)
    return stu, ref, weights


def expect_attention(what: str, weights, output=None, mixed=None, other_weights=None) -> None:
    """Gate checks for an attention layer on an unmasked input: `weights` form a
    distribution over the keys, `output` equals `mixed` (the values mixed with those
    weights), and `other_weights` (for another input) differ: an answer that
    ignores its input earns nothing from the properties it meets trivially.
    Tolerances are loose (half precision passes): precision has tests of its own."""
    weights = weights.double()
    expect(torch.isfinite(weights).all(), f"the weights from {what} contain NaN or infinity")
    expect(bool((weights >= 0).all()), f"{what} gave negative weights")
    expect(torch.allclose(weights.sum(-1), torch.ones((), dtype=torch.float64), atol=1e-2),
           f"the weights from {what} do not sum to 1 over the keys for each query")
    if output is not None:
        expect(torch.isfinite(output).all(), f"the output of {what} contains NaN or infinity")
        expect(torch.allclose(output.double(), mixed.double(), atol=1e-2, rtol=1e-2),
               f"the output of {what} is not the values mixed by its weights")
    if other_weights is not None:
        expect(not torch.allclose(weights, other_weights.double(), atol=1e-6),
               f"the weights from {what} stay the same when the input changes: they must depend on it")
