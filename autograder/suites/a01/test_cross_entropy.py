"""Hidden tests for cross_entropy(logits, targets)."""

import pytest
import torch
import torch.nn.functional as F

from autograder.suite import assert_close, assert_tensor, expect, expect_defined, expect_function, gate, spec

pytestmark = pytest.mark.component("test-cross-entropy")

NAME = "cross_entropy"


def formula(logits, targets):
    """The loss written out in float64 (the specification)."""
    z = logits.double()
    top = z.amax(dim=1, keepdim=True)
    lse = top.squeeze(1) + torch.log(torch.exp(z - top).sum(1))
    return (lse - z[torch.arange(len(targets)), targets]).mean()


def call(student, logits, targets):
    loss = student.cross_entropy(logits, targets)
    assert_tensor(loss, "the loss", shape=())
    return loss


def batch(n, c, dtype=torch.float32, device="cpu", scale=2.0, gen=None):
    logits = (torch.randn(n, c, generator=gen, dtype=torch.float64) * scale).to(dtype=dtype, device=device)
    targets = torch.randint(0, c, (n,), generator=gen).to(device)
    return logits, targets


@gate("test-cross-entropy")
def computes_the_loss(student):
    """On one small batch: the loss is the mean of -log softmax at the targets, and depends on the targets."""
    expect_defined(student, NAME)
    gen = torch.Generator().manual_seed(0)
    logits, targets = batch(6, 4, gen=gen)
    loss = call(student, logits, targets)
    expect(torch.isfinite(loss), "the loss is NaN or infinite on a small batch")
    expect(abs(loss.item() - formula(logits, targets).item()) < 1e-3,
           "the loss is not the mean over the batch of log sum_c exp(logits) - logits[target]")
    other = (targets + 1) % 4
    expect(abs(call(student, logits, other).item() - loss.item()) > 1e-4, "the loss does not depend on the targets")


@spec("Keep each function or class defined at the top level of its answer cell, with\n  exactly the name and signature given")
@pytest.mark.weight(0.5)
def test_is_a_function(student):
    """cross_entropy is a top-level function"""
    expect_function(student, NAME, "(logits, targets)")


@spec("the value of `F.cross_entropy(logits, targets)`", "as a 0-dim tensor")
def test_random_shapes_match_builtin(student, device):
    """Random batches and class counts: the loss equals F.cross_entropy"""
    gen = torch.Generator().manual_seed(1)
    for n, c in [(1, 2), (7, 3), (16, 10), (5, 1), (3, 50), (64, 7)]:
        logits, targets = batch(n, c, device=device, gen=gen)
        loss = call(student, logits, targets)
        assert_tensor(loss, "the loss", dtype=torch.float32, device=device)
        assert_close(loss.cpu(), F.cross_entropy(logits.cpu(), targets.cpu()), f"the loss for N={n}, C={c}", atol=1e-5)
        assert_close(loss.cpu().double(), formula(logits.cpu(), targets.cpu()), f"the loss for N={n}, C={c}", atol=1e-5)


@spec("Return the **mean** over the `N`\n  examples")
def test_mean_over_the_batch(student):
    """The loss is the mean over the batch, not the sum: repeating a batch leaves it unchanged"""
    logits, targets = batch(5, 4, dtype=torch.float64)
    single = call(student, logits, targets)
    doubled = call(student, torch.cat([logits, logits]), torch.cat([targets, targets]))
    assert_close(doubled, single, "the loss of a batch repeated twice (the mean must not change)", atol=1e-12)
    assert_close(single, formula(logits, targets), "the loss", atol=1e-12)


@spec("`targets` shape `(N,)`\n  (`torch.long`, class indices in `[0, C)`)")
def test_targets_pick_the_class(student):
    """Each example's loss is taken at its own target: permuting the classes and relabelling changes nothing"""
    logits, targets = batch(8, 5, dtype=torch.float64)
    perm = torch.randperm(5)
    inverse = torch.argsort(perm)
    loss = call(student, logits, targets)
    moved = call(student, logits[:, perm], inverse[targets])
    assert_close(moved, loss, "the loss after permuting the classes (and the targets with them)", atol=1e-12)
    for t in range(5):
        one_class = torch.full((8,), t)
        assert_close(call(student, logits, one_class), formula(logits, one_class), f"the loss with every target {t}",
                     atol=1e-12)


EXTREMES = [pytest.param(1e4, id="logits-1e4"), pytest.param(-1e4, id="logits-minus-1e4")]


@spec("Numerically stable for logits of $\\pm 10^4$", "never `log(softmax(...))`, which turns a probability\n  that underflows to 0 into an infinite loss")
@pytest.mark.parametrize("scale", EXTREMES)
def test_extreme_logits(student, scale):
    """Logits of size 1e4 give the exact, finite loss (log-sum-exp with the maximum subtracted)"""
    logits = torch.randn(6, 5, dtype=torch.float64) * abs(scale)
    logits[:, 0] += scale
    targets = torch.tensor([0, 1, 2, 3, 4, 1])
    for dtype, atol in [(torch.float32, 1.0), (torch.float64, 1e-8)]:
        loss = call(student, logits.to(dtype), targets)
        expect(torch.isfinite(loss), f"logits of size 1e4 gave an infinite or NaN loss in {dtype}: use the "
                                     "log-sum-exp with the maximum subtracted")
        assert_close(loss.double(), formula(logits.to(dtype), targets), f"the loss for logits of size 1e4 in {dtype}",
                     atol=atol, rtol=1e-6)


DTYPES = [pytest.param(torch.float64, 1e-12, id="float64"), pytest.param(torch.float16, 1e-2, id="float16"),
          pytest.param(torch.bfloat16, 5e-2, id="bfloat16")]


@spec("Keeps the dtype (float32, float64, float16 or bfloat16) and the device of `logits`",
      "graded to an absolute and relative error of $10^{-2}$ in float16")
@pytest.mark.parametrize("dtype, atol", DTYPES)
def test_keeps_dtype_and_device(student, dtype, atol, device):
    """The loss keeps the dtype and device of the logits"""
    logits, targets = batch(9, 6, dtype=dtype, device=device)
    loss = call(student, logits, targets)
    assert_tensor(loss, "the loss", dtype=dtype, device=device)
    assert_close(loss.double().cpu(), formula(logits.cpu(), targets.cpu()), f"the loss in {dtype}", atol=atol, rtol=atol)


@spec("does not modify its inputs")
def test_inputs_left_unchanged(student):
    """logits and targets are not modified in place"""
    logits, targets = batch(5, 4)
    before = (logits.clone(), targets.clone())
    result, after = student.cross_entropy.with_inputs(logits, targets)
    assert_tensor(result, "the loss", shape=())
    for name, old, new in zip(["logits", "targets"], before, after):
        expect(isinstance(new, torch.Tensor) and new.dtype == old.dtype and torch.equal(new, old),
               f"cross_entropy changed its input {name} in place: work on new tensors")


@spec("differentiable: gradients flow back to `logits`")
def test_gradients(student):
    """The gradient with respect to the logits equals F.cross_entropy's (float64)"""
    for n, c, scale in [(4, 3, 1.0), (6, 5, 1e3)]:
        logits, targets = batch(n, c, dtype=torch.float64, scale=scale)
        g = torch.tensor(1.7, dtype=torch.float64)
        result = student.vjp(NAME, (logits, targets), wrt=[0], cotangents=[g])
        expect(isinstance(result, dict) and result.get("grads"), "gradients could not be computed")
        got = result["grads"][0]
        expect(got is not None, "no gradient flows back to the logits: keep the computation differentiable")
        ref = logits.clone().requires_grad_(True)
        (F.cross_entropy(ref, targets) * g).backward()
        assert_close(got, ref.grad, f"the gradient of the loss for N={n}, C={c}", atol=1e-10)


@spec("An empty batch (`N = 0`) returns `nan` (the mean of nothing)", "With a single class (`C = 1`) the loss is 0")
def test_empty_batch_and_single_class(student):
    """An empty batch gives nan without raising; one class gives a loss of 0"""
    empty = call(student, torch.randn(0, 4), torch.zeros(0, dtype=torch.long))
    expect(bool(torch.isnan(empty)), "an empty batch (N = 0) should give nan, the mean of nothing")
    single = call(student, torch.randn(5, 1, dtype=torch.float64) * 10, torch.zeros(5, dtype=torch.long))
    expect(abs(single.item()) < 1e-12, "with a single class the loss should be 0")
