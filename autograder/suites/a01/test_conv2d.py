"""Hidden tests for conv2d(x, weight, bias=None, stride=1, padding=0)."""
import pytest
import torch
import torch.nn.functional as F

from autograder.suite import assert_close, assert_tensor, expect, expect_defined, expect_function, gate, spec

pytestmark = pytest.mark.component("test-conv2d")

NAME = "conv2d"


def formula(x, weight, bias=None, stride=1, padding=0):
    """The definition written out in float64 with loops over the kernel (the specification)."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x, weight = x.double(), weight.double()
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out, w_out = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    padded = torch.zeros(n, x.shape[1], h + 2 * ph, w + 2 * pw, dtype=torch.float64)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    out = torch.zeros(n, c_out, h_out, w_out, dtype=torch.float64)
    for i in range(h_out):
        for j in range(w_out):
            window = padded[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = torch.einsum("nchw,ochw->no", window, weight)
    return out if bias is None else out + bias.double().view(1, -1, 1, 1)


def call(student, x, weight, bias=None, stride=1, padding=0):
    out = student.conv2d(x, weight, bias, stride, padding)
    assert_tensor(out, "the output")
    return out


def tensors(x_shape, w_shape, bias=True, dtype=torch.float32, device="cpu", gen=None):
    x = torch.randn(x_shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    w = torch.randn(w_shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    b = torch.randn(w_shape[0], generator=gen, dtype=torch.float64).to(dtype=dtype, device=device) if bias else None
    return x, w, b


def check(student, x, w, b, stride, padding, atol=1e-5, where=""):
    out = call(student, x, w, b, stride, padding)
    want = F.conv2d(x.cpu(), w.cpu(), None if b is None else b.cpu(), stride, padding)
    where = where or (f" for x {tuple(x.shape)}, weight {tuple(w.shape)}, stride {stride}, padding {padding}"
                      f"{'' if b is not None else ', no bias'}")
    assert_tensor(out, f"the output{where}", shape=want.shape, dtype=x.dtype, device=x.device.type)
    assert_close(out.cpu(), want, f"the output{where}", atol=atol, rtol=atol)
    assert_close(out.cpu().double(), formula(x.cpu(), w.cpu(), None if b is None else b.cpu(), stride, padding),
                 f"the output{where}", atol=atol, rtol=atol)
    return out


@gate("test-conv2d")
def convolves(student):
    """On one small input (stride 1, no padding, no bias): F.conv2d's shape and values, depending on x."""
    expect_defined(student, NAME)
    gen = torch.Generator().manual_seed(0)
    x, w, _ = tensors((2, 3, 6, 5), (4, 3, 3, 2), bias=False, gen=gen)
    out = call(student, x, w)
    assert_tensor(out, "conv2d(x, weight) for x (2, 3, 6, 5) and weight (4, 3, 3, 2)", shape=(2, 4, 4, 4))
    expect(torch.allclose(out.double(), formula(x, w), atol=1e-3),
           "conv2d(x, weight) differs from the definition (a cross-correlation, not flipped)")
    out2 = call(student, x + torch.randn(x.shape, generator=gen), w)
    expect(not torch.allclose(out, out2), "conv2d(x, weight) does not depend on x")


@spec("Keep each function or class defined at the top level of its answer cell, with\n  exactly the name and signature given")
@pytest.mark.weight(0.5)
def test_is_a_function(student):
    """conv2d is a top-level function"""
    expect_function(student, NAME, "(x, weight, bias=None, stride=1, padding=0)")


CONFIGS = [
    pytest.param((2, 3, 8, 8), (5, 3, 3, 3), 1, 1, id="3x3-padding-1"),
    pytest.param((2, 3, 9, 9), (4, 3, 3, 3), 2, 0, id="stride-2"),
    pytest.param((1, 2, 7, 8), (3, 2, 3, 3), 2, 2, id="stride-2-padding-2"),
    pytest.param((1, 2, 9, 7), (3, 2, 2, 4), (2, 1), (1, 0), id="non-square-pairs"),
    pytest.param((3, 4, 5, 6), (6, 4, 1, 1), 1, 0, id="1x1-kernel"),
    pytest.param((2, 3, 4, 5), (2, 3, 6, 7), 1, 1, id="kernel-as-large-as-padded-input"),
    pytest.param((2, 1, 6, 6), (1, 1, 3, 3), 3, (0, 1), id="one-channel-stride-3"),
]


@spec("The result equals `F.conv2d(x, weight, bias, stride, padding)`",
      "1×1 kernels, a\n  kernel as large as the padded input, non-square kernels, inputs, strides and\n  paddings")
@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONFIGS)
def test_matches_builtin(student, x_shape, w_shape, stride, padding):
    """Output shape and values equal F.conv2d's"""
    x, w, b = tensors(x_shape, w_shape)
    check(student, x, w, b, stride, padding)


@spec("$H_\\mathrm{out} = \\lfloor (H + 2 p_h - k_H) / s_h \\rfloor + 1$")
@pytest.mark.weight(2)
def test_random_shapes(student):
    """Random sizes, strides and paddings (ints and pairs): F.conv2d's shape and values"""
    gen = torch.Generator().manual_seed(1)
    for i in range(12):
        n, c_in, c_out = (int(v) for v in torch.randint(1, 4, (3,), generator=gen))
        kh, kw = (int(v) for v in torch.randint(1, 5, (2,), generator=gen))
        sh, sw = (int(v) for v in torch.randint(1, 4, (2,), generator=gen))
        ph, pw = (int(v) for v in torch.randint(0, 3, (2,), generator=gen))
        h = kh + int(torch.randint(0, 6, (), generator=gen))
        w = kw + int(torch.randint(0, 6, (), generator=gen))
        stride, padding = ((sh, sw), (ph, pw)) if i % 2 else (sh, ph)
        x, wt, b = tensors((n, c_in, h, w), (c_out, c_in, kh, kw), bias=i % 3 != 0, gen=gen)
        check(student, x, wt, b, stride, padding)


@spec("`stride` and `padding` take an int (the same for\n  height and width) or an `(h, w)` pair")
def test_int_and_pair_agree(student):
    """An int stride or padding means the same as the pair (int, int); a pair applies per dimension"""
    x, w, b = tensors((2, 2, 9, 10), (3, 2, 3, 2))
    check(student, x, w, b, (2, 2), (1, 1))
    check(student, x, w, b, (1, 3), (2, 0))
    check(student, x, w, b, (3, 1), (0, 2))


@spec("This is a cross-correlation, as in `F.conv2d`: the\n  kernel is not flipped")
def test_kernel_is_not_flipped(student):
    """The kernel is not flipped: a single 1 in its corner picks the matching input pixel"""
    x = torch.randn(1, 1, 5, 6, dtype=torch.float64)
    w = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    w[0, 0, 0, 0] = 1.0
    out = call(student, x, w)
    assert_close(out, x[:, :, :3, :4], "the output of a kernel with a single 1 at its top-left corner", atol=1e-12)


@spec("`bias`,\n  when given, shape `(C_out,)`")
def test_bias_per_output_channel(student):
    """The bias is added per output channel; None adds nothing"""
    x, w, b = tensors((2, 3, 5, 5), (4, 3, 3, 3), dtype=torch.float64)
    with_bias, without = call(student, x, w, b), call(student, x, w)
    assert_close(with_bias - without, b.view(1, 4, 1, 1).expand_as(without), "output with bias minus output without",
                 atol=1e-12)
    check(student, x, w, None, 1, 0)


@spec("gradients flow to `x`, `weight` and\n  `bias`")
def test_gradients(student):
    """Gradients with respect to x, weight and bias equal F.conv2d's (float64)"""
    for stride, padding in [(1, 1), ((2, 1), (0, 2))]:
        x, w, b = tensors((2, 3, 7, 6), (4, 3, 3, 2), dtype=torch.float64)
        ref = [t.clone().requires_grad_(True) for t in (x, w, b)]
        out = F.conv2d(*ref, stride, padding)
        g = torch.randn(out.shape, dtype=torch.float64)
        out.backward(g)
        result = student.vjp(NAME, (x, w, b, stride, padding), wrt=[0, 1, 2], cotangents=[g])
        expect(isinstance(result, dict) and isinstance(result.get("grads"), list), "gradients could not be computed")
        for name, got, want in zip(["x", "weight", "bias"], result["grads"], ref):
            expect(got is not None, f"no gradient flows back to {name}: keep the computation differentiable")
            assert_close(got, want.grad, f"the gradient with respect to {name} (stride {stride}, padding {padding})",
                         atol=1e-10)


DTYPES = [pytest.param(torch.float32, 1e-5, id="float32"), pytest.param(torch.float64, 1e-10, id="float64"),
          pytest.param(torch.bfloat16, 1e-1, id="bfloat16")]


@spec("Keeps the dtype (float32, float64 or bfloat16) and the device of `x`")
@pytest.mark.parametrize("dtype, atol", DTYPES)
def test_keeps_dtype_and_device(student, dtype, atol, device):
    """The output keeps the dtype and device of x (and is right there)"""
    x, w, b = tensors((2, 3, 7, 6), (4, 3, 3, 2), dtype=dtype, device=device)
    out = call(student, x, w, b, (2, 1), (1, 0))
    assert_tensor(out, "the output", shape=(2, 4, 4, 5), dtype=dtype, device=device)
    assert_close(out.double().cpu(), formula(x.cpu(), w.cpu(), b.cpu(), (2, 1), (1, 0)), f"the output in {dtype}",
                 atol=atol, rtol=atol)


@spec("does not\n  modify its inputs")
def test_inputs_left_unchanged(student):
    """x, weight and bias are not modified in place"""
    x, w, b = tensors((2, 3, 6, 6), (4, 3, 3, 3))
    before = [t.clone() for t in (x, w, b)]
    result, after = student.conv2d.with_inputs(x, w, b, 2, 1)
    assert_tensor(result, "the output")
    for name, old, new in zip(["x", "weight", "bias"], before, after):
        expect(isinstance(new, torch.Tensor) and torch.equal(new, old),
               f"conv2d changed its input {name} in place: work on new tensors")


@spec("`x` has shape `(N, C_in, H, W)`, `weight` shape `(C_out, C_in, kH, kW)`")
def test_same_shapes_keep_their_roles(student):
    """x and weight of one shape (as can happen) each play their own role"""
    for shape, padding in [((3, 3, 3, 3), 1), ((2, 2, 4, 4), 0)]:
        x, w, b = tensors(shape, shape, dtype=torch.float64)
        check(student, x, w, b, 1, padding, where=f" for x and weight both of shape {shape}")


@spec("an empty batch (`N = 0`), which gives an empty output")
def test_empty_batch(student):
    """An empty batch (N = 0) gives an empty output of the right shape"""
    x, w, b = tensors((0, 3, 6, 5), (4, 3, 3, 3))
    out = call(student, x, w, b, 1, 1)
    assert_tensor(out, "the output for an empty batch", shape=(0, 4, 6, 5), dtype=torch.float32)
