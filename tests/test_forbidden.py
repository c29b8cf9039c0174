"""What the static check of forbidden APIs flags in an answer cell, and what it
leaves to the worker's run-time tripwires: precise enough that a student's own
`.grad` or `self.softmax` is never mistaken for torch's."""
import pytest

from autograder.extract import forbidden_uses

SOFTMAX = ["torch.nn.functional.softmax", "torch.softmax", "torch.Tensor.softmax"]
GRAD = ["torch.autograd.grad", "torch.Tensor.backward"]
SDPA = ["torch.nn.functional.scaled_dot_product_attention"]


@pytest.mark.parametrize("source, forbidden, flagged", [
    ("y = F.softmax(x, -1)", SOFTMAX, ["torch.nn.functional.softmax"]),
    ("y = torch.nn.functional.softmax(x, -1)", SOFTMAX, ["torch.nn.functional.softmax"]),
    ("import torch.nn.functional as fn\ny = fn.softmax(x, -1)", SOFTMAX, ["torch.nn.functional.softmax"]),
    ("from torch.nn import functional as G\ny = G.softmax(x, -1)", SOFTMAX, ["torch.nn.functional.softmax"]),
    ("from torch.nn.functional import softmax as s\ny = s(x, -1)", SOFTMAX, ["torch.nn.functional.softmax"]),
    ("y = torch.softmax(x, -1)", SOFTMAX, ["torch.softmax"]),
    ("y = x.softmax(-1)", SOFTMAX, ["torch.Tensor.softmax"]),
    ("y = getattr(F, 'softmax')(x, -1)", SOFTMAX, ["torch.nn.functional.softmax"]),
    ("y = getattr(x, 'softmax')(-1)", SOFTMAX, ["torch.Tensor.softmax"]),
    ("g = torch.autograd.grad(y, x)", GRAD, ["torch.autograd.grad"]),
    ("from torch import autograd\ng = autograd.grad(y, x)", GRAD, ["torch.autograd.grad"]),
    ("loss.backward()", GRAD, ["torch.Tensor.backward"]),
    ("f = 'scaled_dot_product_attention'", SDPA, ["torch.nn.functional.scaled_dot_product_attention"]),
    ("y = getattr(F, name)(x)", SOFTMAX, ["getattr with a computed name, which could reach a forbidden API"]),
    ("y = f.__wrapped__(x)", SOFTMAX, ["introspection (__wrapped__), which could reach a forbidden API"]),
])
def test_flagged(source, forbidden, flagged):
    assert forbidden_uses(source, forbidden) == flagged


@pytest.mark.parametrize("source, forbidden", [
    ("self.grad += other.grad * local", GRAD),           # a scalar engine's own gradients
    ("node.grad = 0.0\nstate = {'grad': 1}", GRAD),
    ("def softmax(x, dim=-1):\n    return x\ny = softmax(z)", SOFTMAX),  # the student's own function
    ("y = self.softmax(x)", ["torch.nn.functional.softmax", "torch.softmax"]),  # a method of theirs
    ("def backward(self):\n    pass", ["torch.autograd.grad"]),
    ("key = 'softmax'", SOFTMAX),                          # a common word in a string
])
def test_not_flagged(source, forbidden):
    assert forbidden_uses(source, forbidden) == []
