"""Hidden tests for softmax(x, dim=-1)."""
import pytest
import torch

from autograder.suite import assert_close, assert_tensor, expect, expect_defined, expect_function, gate, spec

pytestmark = pytest.mark.component("test-softmax")

NAME = "softmax"


def formula(x, dim=-1):
    """The softmax written out in float64 (the specification)."""
    x = x.double()
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def call(student, x, *args, **kwargs):
    out = student.softmax(x, *args, **kwargs)
    assert_tensor(out, "the softmax", shape=x.shape)
    return out


@gate("test-softmax")
def computes_a_softmax(student):
    """On one small input: rows that are distributions, follow exp(x) / sum exp(x), and depend on x."""
    expect_defined(student, NAME)
    gen = torch.Generator().manual_seed(0)
    x, x2 = torch.randn(3, 5, generator=gen), torch.randn(3, 5, generator=gen)
    p, p2 = call(student, x), call(student, x2)
    expect(torch.isfinite(p).all(), "softmax(x) contains NaN or infinity")
    expect(bool((p >= 0).all()) and torch.allclose(p.double().sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-3),
           "the rows of softmax(x) (dim=-1) are not distributions: non-negative, summing to 1")
    expect(torch.allclose(p.double(), formula(x), atol=1e-3), "softmax(x) is not exp(x) / sum exp(x) along the last "
                                                              "dimension")
    expect(not torch.allclose(p, p2), "softmax(x) does not depend on x")


@spec("Keep each function or class defined at the top level of its answer cell, with\n  exactly the name and signature given")
@pytest.mark.weight(0.5)
def test_is_a_function(student):
    """softmax is a top-level function"""
    expect_function(student, NAME, "(x, dim=-1)")


DIMS = [((4, 6), -1), ((4, 6), 0), ((2, 3, 5), 1), ((2, 3, 5), -2), ((2, 3, 4, 5), 2), ((7,), 0), ((3, 1, 4), 1)]


@spec("any\n  dimension of a tensor of any shape, negative or positive")
@pytest.mark.weight(2)
def test_any_dim_matches_formula(student, device):
    """softmax along any dimension (negative or positive) of tensors of 1 to 4 dimensions equals exp(x) / sum exp(x)"""
    for shape, dim in DIMS:
        x = torch.randn(shape, device=device) * 3
        p = call(student, x, dim)
        assert_tensor(p, "the softmax", dtype=torch.float32, device=device)
        assert_close(p.cpu(), formula(x.cpu(), dim).float(), f"softmax of shape {shape} along dim={dim}", atol=1e-6)
        assert_close(p.cpu(), torch.softmax(x.cpu(), dim), f"softmax of shape {shape} along dim={dim}", atol=1e-6)


@spec("the last one by default")
def test_default_dim_is_last(student):
    """Without dim, softmax normalises the last dimension"""
    x = torch.randn(3, 4, 5)
    assert_close(call(student, x), torch.softmax(x, -1), "softmax(x) without dim", atol=1e-6)
    assert_close(call(student, x, dim=-1), torch.softmax(x, -1), "softmax(x, dim=-1)", atol=1e-6)


@spec("along `dim` its entries are positive and sum to 1")
def test_random_shapes(student):
    """Random shapes and dims: positive entries that sum to 1 along dim"""
    gen = torch.Generator().manual_seed(1)
    for _ in range(8):
        ndim = int(torch.randint(1, 5, (), generator=gen))
        shape = tuple(int(s) for s in torch.randint(1, 6, (ndim,), generator=gen))
        dim = int(torch.randint(-ndim, ndim, (), generator=gen))
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * 4
        p = call(student, x, dim)
        assert_tensor(p, "the softmax", dtype=torch.float64)
        expect(bool((p > 0).all()), f"softmax of shape {shape} along dim={dim} has entries that are not positive")
        assert_close(p, formula(x, dim), f"softmax of shape {shape} along dim={dim}", atol=1e-12)


EXTREMES = [pytest.param("large", id="logits-1e4"), pytest.param("mixed-scales", id="rows-of-different-scales"),
            pytest.param("very-negative", id="all-logits-minus-1e4")]


@spec("so that logits of $\\pm 10^4$ give no inf or NaN,\n  even when the slices of one tensor have very different scales")
@pytest.mark.parametrize("kind", EXTREMES)
def test_extreme_logits(student, kind):
    """Logits of size 1e4 give no inf or NaN, whatever the scale of each row"""
    x = torch.randn(4, 6, dtype=torch.float64)
    if kind == "large":
        x = x * 1e4
    elif kind == "mixed-scales":
        x = x + torch.tensor([[1e4], [-1e4], [0.0], [5e3]], dtype=torch.float64)
    else:
        x = x - 1e4
    for dtype in (torch.float32, torch.float64):
        p = call(student, x.to(dtype))
        expect(torch.isfinite(p).all(), f"logits of size 1e4 gave inf or NaN in {dtype}: subtract the maximum "
                                        "along dim first")
        assert_close(p.double(), formula(x.to(dtype)), f"the softmax of logits of size 1e4 in {dtype}",
                     atol=1e-3 if dtype == torch.float32 else 1e-9)


@spec("adding a constant along\n  `dim` does not change the softmax")
def test_shift_invariance(student):
    """Adding a constant along dim does not change the softmax"""
    x = torch.randn(5, 7, dtype=torch.float64)
    shift = torch.randn(5, 1, dtype=torch.float64) * 100
    assert_close(call(student, x + shift), call(student, x), "the softmax of x + c (c constant along dim)",
                 atol=1e-12)
    column_shift = torch.randn(1, 7, dtype=torch.float64) * 100
    assert_close(call(student, x + column_shift, 0), call(student, x, 0),
                 "the softmax along dim=0 of x + c (c constant along dim)", atol=1e-12)


DTYPES = [pytest.param(torch.float64, 1e-12, id="float64"), pytest.param(torch.float16, 2e-3, id="float16"),
          pytest.param(torch.bfloat16, 1e-2, id="bfloat16")]


@spec("Keeps the dtype (float32, float64, float16 or bfloat16) and the device of `x`",
      "graded to an absolute and relative error of $2 \\cdot 10^{-3}$ in float16")
@pytest.mark.parametrize("dtype, atol", DTYPES)
def test_keeps_dtype_and_device(student, dtype, atol, device):
    """The output keeps the dtype and device of x (float64, float16, bfloat16)"""
    x = (torch.randn(3, 8) * 3).to(dtype=dtype, device=device)
    p = call(student, x)
    assert_tensor(p, "the softmax", dtype=dtype, device=device)
    expect(torch.isfinite(p).all(), f"softmax in {dtype} contains NaN or infinity")
    assert_close(p.double().cpu(), formula(x.cpu()), f"softmax in {dtype}", atol=atol, rtol=atol)


@spec("does\n  not modify `x` (no in-place operations on it)")
def test_input_left_unchanged(student):
    """x is not modified in place"""
    for dim in (-1, 0):
        x = torch.randn(4, 5) * 3
        before = x.clone()
        result, (after, *_) = student.softmax.with_inputs(x, dim)
        assert_tensor(result, "the softmax", shape=x.shape)
        expect(isinstance(after, torch.Tensor) and torch.equal(after, before),
               "softmax changed its input x in place: work on new tensors (x - m, not x -= m)")


@spec("is differentiable: gradients flow\n  back to `x`")
def test_gradients(student):
    """Gradients with respect to x equal PyTorch's (float64)"""
    for shape, dim in [((3, 5), -1), ((2, 4, 3), 1)]:
        x = torch.randn(shape, dtype=torch.float64)
        g = torch.randn(shape, dtype=torch.float64)
        result = student.vjp(NAME, (x, dim), wrt=[0], cotangents=[g])
        expect(isinstance(result, dict) and result.get("grads"), "gradients could not be computed")
        got = result["grads"][0]
        expect(got is not None, "no gradient flows back to x: keep the computation differentiable")
        xr = x.clone().requires_grad_(True)
        (torch.softmax(xr, dim) * g).sum().backward()
        assert_close(got, xr.grad, f"the gradient of the softmax along dim={dim}", atol=1e-10)


@spec("A tensor with no elements (a zero-size dimension, e.g. shape `(0, 5)` or `(3, 0)`)\n  gives an empty tensor of the same shape")
def test_empty_tensor(student):
    """A tensor with no elements gives an empty tensor of the same shape"""
    for shape, dim in [((0, 5), -1), ((3, 0), -1), ((2, 0, 4), 1)]:
        x = torch.randn(shape, dtype=torch.float64)
        p = call(student, x, dim)
        assert_tensor(p, f"the softmax of an empty tensor of shape {shape}", shape=shape, dtype=torch.float64)
