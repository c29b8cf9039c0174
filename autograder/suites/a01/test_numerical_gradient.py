"""Hidden tests for numerical_gradient(f, x, eps=1e-6).

The functions to differentiate are the suite's own, defined in the student's
namespace (`student.define`); a wrapper records how the student calls them."""
import pytest
import torch

from autograder.suite import assert_close, assert_tensor, expect, expect_defined, expect_function, gate, spec

pytestmark = pytest.mark.component("test-numerical-gradient")

NAME = "numerical_gradient"

HELPERS = '''
def grader_a01_ng_smooth(t):
    import torch as _torch
    return (t ** 3).sum() + (_torch.sin(2.0 * t) * t).sum()


def grader_a01_ng_exp3(t):
    import torch as _torch
    return _torch.exp(3.0 * t).sum()


def grader_a01_ng_cubic(t):
    return (t ** 3).sum()


def grader_a01_ng_number(t):
    import math as _math
    return float(sum(_math.sin(v) * v for v in t.reshape(-1).tolist()))


def grader_a01_ng_run(name, x, eps):
    import torch as _torch
    f = globals()[name]
    original = x.clone()
    seen = {"dtypes": set(), "shapes": set(), "is_x": False, "calls": 0}

    def wrapped(t):
        seen["calls"] += 1
        seen["dtypes"].add(str(t.dtype).replace("torch.", ""))
        seen["shapes"].add(tuple(t.shape))
        if t is x or (t.numel() > 0 and x.numel() > 0 and t.data_ptr() == x.data_ptr()):
            seen["is_x"] = True
        return f(t)

    g = numerical_gradient(wrapped, x) if eps is None else numerical_gradient(wrapped, x, eps=eps)
    unchanged = x.dtype == original.dtype and x.shape == original.shape and bool(_torch.equal(x, original))
    return [g, sorted(seen["dtypes"]), [list(s) for s in sorted(seen["shapes"])], seen["is_x"], seen["calls"],
            unchanged]
'''


def helpers(student):
    if not getattr(student, "_a01_ng_helpers", False):
        expect_defined(student, NAME)
        student.define(HELPERS)
        student._a01_ng_helpers = True


def run(student, name, x, eps=None):
    helpers(student)
    result = student.grader_a01_ng_run(name, x, eps)
    g, dtypes, shapes, is_x, calls, unchanged = result
    assert_tensor(g, "the numerical gradient", shape=x.shape)
    return g, dtypes, shapes, is_x, calls, unchanged


def analytic(name, x):
    """The exact gradient, with PyTorch's autograd in float64."""
    t = x.detach().double().cpu().requires_grad_(True)
    f = {"grader_a01_ng_smooth": lambda t: (t ** 3).sum() + (torch.sin(2.0 * t) * t).sum(),
         "grader_a01_ng_exp3": lambda t: torch.exp(3.0 * t).sum(),
         "grader_a01_ng_cubic": lambda t: (t ** 3).sum(),
         "grader_a01_ng_number": lambda t: (torch.sin(t) * t).sum()}[name]
    f(t).backward()
    return t.grad


@gate("test-numerical-gradient")
def differentiates(student):
    """On one small input: close to the exact gradient, and dependent on x."""
    expect_defined(student, NAME)
    gen = torch.Generator().manual_seed(0)
    x, x2 = torch.randn(4, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen, dtype=torch.float64)
    g = run(student, "grader_a01_ng_smooth", x)[0]
    g2 = run(student, "grader_a01_ng_smooth", x2)[0]
    expect(torch.isfinite(g).all(), "the numerical gradient contains NaN or infinity")
    expect(torch.allclose(g.double().cpu(), analytic("grader_a01_ng_smooth", x), atol=1e-3),
           "the numerical gradient of sum(x^3 + x sin 2x) is far from its exact gradient: "
           "divide f(x + eps e_i) - f(x - eps e_i) by 2 eps")
    expect(not torch.allclose(g, g2), "the numerical gradient does not depend on x")


@spec("Keep each function or class defined at the top level of its answer cell, with\n  exactly the name and signature given")
@pytest.mark.weight(0.5)
def test_is_a_function(student):
    """numerical_gradient is a top-level function"""
    expect_function(student, NAME, "(f, x, eps=1e-6)")


SHAPES = [pytest.param((), id="0-dim"), pytest.param((5,), id="1d"), pytest.param((2, 3), id="2d"),
          pytest.param((2, 1, 3), id="3d")]


@spec("Return `g`, a **float64** tensor of the shape of `x` on its device", "have any shape, including a 0-dim tensor")
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_autograd_for_any_shape(student, shape):
    """For x of any shape the result has that shape and equals the exact gradient"""
    x = torch.randn(shape, dtype=torch.float64)
    g = run(student, "grader_a01_ng_smooth", x)[0]
    assert_tensor(g, "the numerical gradient", shape=shape, dtype=torch.float64)
    assert_close(g, analytic("grader_a01_ng_smooth", x), f"the numerical gradient for x of shape {shape}", atol=1e-6)


@spec("Central differences are accurate to $O(\\varepsilon^2)$, one-sided\n  ones only to $O(\\varepsilon)$, and the grader can tell them apart")
@pytest.mark.weight(2)
def test_central_differences(student):
    """Central differences: accurate to O(eps^2), where one-sided ones are not"""
    x = torch.rand(6, dtype=torch.float64)
    g = run(student, "grader_a01_ng_exp3", x)[0]
    assert_close(g, analytic("grader_a01_ng_exp3", x), "the numerical gradient of sum(exp(3x))", atol=1e-6, rtol=1e-8)


@spec("The result is float64 either way", "Work in float64: call `f` with float64 tensors")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32-x", "float64-x"])
def test_works_in_float64(student, dtype):
    """f is called with float64 tensors and the result is float64, also for a float32 x"""
    x = torch.randn(3, 2, dtype=dtype)
    g, dtypes, *_ = run(student, "grader_a01_ng_smooth", x)
    assert_tensor(g, "the numerical gradient", dtype=torch.float64)
    expect(dtypes == ["float64"], f"f was called with tensors of dtype {', '.join(dtypes)}: call it with float64")
    assert_close(g, analytic("grader_a01_ng_smooth", x), f"the numerical gradient for a {dtype} x", atol=1e-6)


@spec("`f` takes a tensor of the shape of `x`")
def test_calls_f_with_the_shape_of_x(student):
    """f is called with tensors of the shape of x"""
    x = torch.randn(2, 3, 2, dtype=torch.float64)
    _, _, shapes, *_ = run(student, "grader_a01_ng_cubic", x)
    expect(shapes == [[2, 3, 2]], f"f was called with tensors of shapes {shapes}: give it the shape of x")


@spec("`x` is never changed: call `f` with new tensors, never with `x` itself (not even\n  modified and then restored)")
@pytest.mark.weight(2)
def test_x_never_changed(student):
    """x is never changed, and f never receives x itself"""
    for dtype in (torch.float64, torch.float32):
        x = torch.randn(4, 3, dtype=dtype)
        _, _, _, is_x, _, unchanged = run(student, "grader_a01_ng_cubic", x)
        expect(unchanged, f"numerical_gradient changed x ({dtype}): perturb copies, never x")
        expect(not is_x, f"f was called with x itself ({dtype}), perturbed in place: call it with new tensors")


@spec("and $\\varepsilon$ is `eps`")
@pytest.mark.parametrize("eps", [0.1, 1e-3], ids=["large-eps", "small-eps"])
def test_eps_is_the_step(student, eps):
    """eps is the step: for sum(x^3) the result is exactly 3x^2 + eps^2"""
    x = torch.randn(5, dtype=torch.float64)
    g = run(student, "grader_a01_ng_cubic", x, eps)[0]
    central = 3 * x ** 2 + eps ** 2
    assert_close(g, central, f"the central difference of sum(x^3) with eps={eps:.0e}", atol=1e-8)


@spec("returns a scalar (a 0-dim tensor or a\n  Python number)")
def test_f_may_return_a_python_number(student):
    """f may return a Python float"""
    x = torch.randn(4, dtype=torch.float64)
    g = run(student, "grader_a01_ng_number", x)[0]
    assert_close(g, analytic("grader_a01_ng_number", x), "the numerical gradient of a function returning a float",
                 atol=1e-6)


@spec("A tensor with no elements gives an empty float64\n  tensor of its shape")
@pytest.mark.parametrize("shape", [(0,), (2, 0)], ids=["0", "2x0"])
def test_empty_x(student, shape):
    """x with no elements gives an empty float64 tensor of its shape"""
    x = torch.zeros(shape, dtype=torch.float32)
    g = run(student, "grader_a01_ng_cubic", x)[0]
    assert_tensor(g, "the numerical gradient of an empty x", shape=shape, dtype=torch.float64)


@spec("on its device")
def test_keeps_the_device(student, device):
    """The result is on the device of x"""
    x = torch.randn(3, dtype=torch.float64, device=device)
    g = run(student, "grader_a01_ng_smooth", x)[0]
    assert_tensor(g, "the numerical gradient", shape=(3,), dtype=torch.float64, device=device)
    assert_close(g.cpu(), analytic("grader_a01_ng_smooth", x), "the numerical gradient", atol=1e-6)
