"""Hidden tests for ResidualBlock(channels)."""
import pytest
import torch
import torch.nn.functional as F

from autograder.suite import (assert_close, assert_tensor, expect, expect_module_class, gate, spec,
                              twin_modules)

pytestmark = pytest.mark.component("test-residual-block")

NAME = "ResidualBlock"


def formula(weights, x, training):
    """The block written out with PyTorch's functions, from a state dict (the specification).
    In training mode the running statistics in `weights` are updated, as nn.BatchNorm2d does."""
    def bn(h, name):
        return F.batch_norm(h, weights[f"{name}.running_mean"], weights[f"{name}.running_var"],
                            weights[f"{name}.weight"], weights[f"{name}.bias"], training, 0.1, 1e-5)
    branch = F.relu(bn(F.conv2d(x, weights["conv1.weight"], padding=1), "bn1"))
    branch = bn(F.conv2d(branch, weights["conv2.weight"], padding=1), "bn2")
    return F.relu(x + branch)


def randomize(weights, gen):
    """Random weights, batch-norm scales, shifts and running statistics (distinct for every tensor)."""
    out = {}
    for name, t in weights.items():
        if t.dtype == torch.long:
            out[name] = t.clone()
        elif name.endswith("running_var"):
            out[name] = (torch.rand(t.shape, generator=gen, dtype=torch.float64) + 0.5).to(t.dtype)
        else:
            out[name] = (torch.randn(t.shape, generator=gen, dtype=torch.float64) * 0.5).to(t.dtype)
    return out


def fresh_weights(channels, gen, dtype=torch.float32):
    """A state dict for the four submodules, random (distinct for every tensor), made here."""
    shapes = {"conv1.weight": (channels, channels, 3, 3), "conv2.weight": (channels, channels, 3, 3)}
    for bn in ("bn1", "bn2"):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{bn}.{name}"] = (channels,)
    weights = {name: torch.zeros(shape, dtype=dtype) for name, shape in shapes.items()}
    weights = randomize(weights, gen)
    for bn in ("bn1", "bn2"):
        weights[f"{bn}.num_batches_tracked"] = torch.tensor(0)
    return weights


def block(student, channels, weights, dtype=None, grad=False):
    """The student's block holding `weights` (three round trips)."""
    stu = getattr(student, NAME)(channels)
    if not grad:
        stu.requires_grad_(False)
    if dtype is not None:
        stu.to(dtype)
    stu.load_state_dict(weights)
    return stu


def twins(student, reference, channels, dtype=None, grad=False, seed=0):
    """The student's block and the reference's, holding the same random weights."""
    stu, ref, weights = twin_modules(student, reference, NAME, channels, dtype=dtype, grad=grad)
    weights = randomize(weights, torch.Generator().manual_seed(seed))
    stu.load_state_dict(weights)
    ref.load_state_dict(weights)
    return stu, ref, weights


def copy(weights):
    return {k: v.clone() for k, v in weights.items()}


@gate("test-residual-block")
def adds_the_skip(student):
    """On one small input in training mode: relu(x + bn2(conv2(relu(bn1(conv1(x)))))), depending on x."""
    expect_module_class(student, NAME, 3)
    stu = getattr(student, NAME)(3).requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    weights = randomize(stu.state_dict(), gen)
    stu.load_state_dict(weights)
    x = torch.randn(2, 3, 5, 5, generator=gen)
    out = stu(x)
    assert_tensor(out, "the output for x (2, 3, 5, 5)", shape=(2, 3, 5, 5))
    expect(torch.allclose(out, formula(copy(weights), x, True), atol=1e-3),
           "the output is not relu(x + bn2(conv2(relu(bn1(conv1(x)))))) in training mode")
    out2 = stu(x * 2 + 1)
    expect(not torch.allclose(out, out2), "the output does not depend on x")


@spec("with exactly these submodules (the\ngrader loads weights into them by name)", "The convolutions have no bias")
def test_submodules(student, reference):
    """conv1, bn1, conv2, bn2: 3x3 convolutions without bias, padding 1, and batch norms over the channels"""
    expect_module_class(student, NAME, 5)
    block = getattr(student, NAME)(5)
    for name, kind in [("conv1", "Conv2d"), ("bn1", "BatchNorm2d"), ("conv2", "Conv2d"), ("bn2", "BatchNorm2d")]:
        expect(student.has(NAME), f"{NAME} is not defined")
        module = getattr(block, name).get()
        expect(getattr(module, "type_name", None) == kind, f"self.{name} should be an nn.{kind}")
    for name in ("conv1", "conv2"):
        conv = getattr(block, name)
        expect(tuple(conv.weight.get().shape) == (5, 5, 3, 3), f"self.{name}.weight should have shape (5, 5, 3, 3)")
        expect(conv.bias.get() is None, f"self.{name} must have bias=False")
        expect(tuple(conv.padding.get()) == (1, 1) and tuple(conv.stride.get()) == (1, 1),
               f"self.{name} should have stride 1 and padding 1")
    keys = sorted(block.state_dict().keys())
    want = sorted(getattr(reference, NAME)(5).state_dict().keys())
    expect(keys == want, "the block's parameters and buffers should be exactly those of conv1, bn1, conv2 and bn2")


SHAPES = [pytest.param(1, (2, 1, 4, 4), id="1-channel"), pytest.param(4, (3, 4, 6, 5), id="4-channels"),
          pytest.param(8, (2, 8, 3, 7), id="8-channels"), pytest.param(2, (1, 2, 9, 9), id="batch-of-one")]


@spec("`forward(x)` takes `x` of shape `(N, channels, H, W)` and returns, with the same shape",
      "in training mode the batch norms normalise with\n  the batch's statistics")
@pytest.mark.parametrize("channels, shape", SHAPES)
def test_training_mode_matches_formula(student, reference, channels, shape, device):
    """In training mode the output equals the formula with batch statistics"""
    weights = fresh_weights(channels, torch.Generator().manual_seed(channels))
    stu = block(student, channels, weights).to(device)
    x = torch.randn(shape, device=device)
    out = stu(x)
    assert_tensor(out, "the output", shape=shape, dtype=torch.float32, device=device)
    assert_close(out.cpu(), formula(copy(weights), x.cpu(), True), f"the output for x of shape {shape}", atol=1e-4)


@spec("(and update their running averages)")
def test_running_statistics_are_updated(student, reference):
    """A forward pass in training mode updates the batch norms' running averages"""
    weights = fresh_weights(3, torch.Generator().manual_seed(1))
    stu = block(student, 3, weights)
    expected = copy(weights)
    x = torch.randn(4, 3, 5, 5)
    stu(x)
    formula(expected, x, True)
    got = stu.state_dict()
    for name in ("bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"):
        assert_close(got[name], expected[name], f"{name} after one forward pass in training mode", atol=1e-5)


@spec("in eval mode with\n  their running averages")
def test_eval_mode_uses_running_statistics(student, reference):
    """In eval mode the batch norms use their running averages"""
    stu, ref, weights = twins(student, reference, 4, seed=2)
    stu.eval()
    ref.eval()
    x = torch.randn(2, 4, 6, 6)
    assert_close(stu(x), formula(copy(weights), x, False), "the output in eval mode", atol=1e-4)
    assert_close(stu(x), ref(x), "the output in eval mode", atol=1e-4)


@spec("the skip connection adds the input **before** the last ReLU")
def test_skip_added_before_the_last_relu(student, reference):
    """The input is added before the last ReLU: with a negative shift in bn2, relu(x - c)"""
    weights = fresh_weights(3, torch.Generator().manual_seed(3))
    weights["bn2.weight"] = torch.zeros(3)
    weights["bn2.bias"] = torch.full((3,), -0.7)
    stu = block(student, 3, weights)
    x = torch.randn(2, 3, 5, 5)
    assert_close(stu(x), F.relu(x - 0.7), "the output when bn2 outputs a negative constant", atol=1e-5)


@spec("gradients flow to\n  `x` and to every parameter")
def test_gradients(student, reference):
    """Gradients flow to x and to every parameter, as in the formula (float64)"""
    weights = fresh_weights(3, torch.Generator().manual_seed(4), dtype=torch.float64)
    stu = block(student, 3, weights, dtype=torch.float64, grad=True)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    g = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    result = student.vjp(stu, (x,), wrt=[0], cotangents=[g])
    expect(isinstance(result, dict) and isinstance(result.get("grads"), list), "gradients could not be computed")
    params = {k: v.clone().requires_grad_(v.is_floating_point() and "running" not in k) for k, v in weights.items()}
    xr = x.clone().requires_grad_(True)
    formula(params, xr, True).backward(g)
    expect(result["grads"][0] is not None, "no gradient flows back to x")
    assert_close(result["grads"][0], xr.grad, "the gradient with respect to x", atol=1e-8)
    got = result.get("param_grads") or {}
    for name in ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias"):
        expect(got.get(name) is not None, f"no gradient reaches {name}")
        assert_close(got[name], params[name].grad, f"the gradient of {name}", atol=1e-8)


@spec("The output keeps the dtype (float32 or float64) and the device of the block and of\n  `x`")
def test_keeps_dtype_and_device(student, reference, device):
    """A float64 block on float64 input gives float64 output, on the same device"""
    weights = fresh_weights(3, torch.Generator().manual_seed(5), dtype=torch.float64)
    stu = block(student, 3, weights, dtype=torch.float64).to(device)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, device=device)
    out = stu(x)
    assert_tensor(out, "the output", shape=(2, 3, 4, 4), dtype=torch.float64, device=device)
    assert_close(out.cpu(), formula(copy(weights), x.cpu(), True), "the output in float64", atol=1e-10)


@spec("`x` is not modified (no in-place `x += ...` or `relu_` on it)")
def test_input_left_unchanged(student, reference):
    """x is not modified in place"""
    stu = block(student, 3, fresh_weights(3, torch.Generator().manual_seed(6)))
    x = torch.randn(2, 3, 5, 5)
    before = x.clone()
    result, (after,) = stu.with_inputs(x)
    assert_tensor(result, "the output", shape=x.shape)
    expect(torch.equal(after, before), "the block changed its input x in place: use x + branch, not x += branch")
