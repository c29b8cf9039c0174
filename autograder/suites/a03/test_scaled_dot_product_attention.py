"""Hidden tests for scaled_dot_product_attention(q, k, v, mask=None)."""
import pytest
import torch
import torch.nn.functional as F

from autograder.suite import (assert_close, assert_tensor, attention, expect, expect_attention,
                              expect_defined, expect_function, expect_pair, gate, spec)

pytestmark = pytest.mark.component("test-sdpa")

NAME = "scaled_dot_product_attention"


# --- helpers (trusted side) -----------------------------------------------------------

def builtin(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def call(student, q, k, v, mask=None):
    """The student's (output, weights), checked to be a pair of tensors."""
    result = student.scaled_dot_product_attention(q, k, v, mask)
    return pair(result)


def pair(result):
    return expect_pair(result, NAME)


def shapes(*tensors):
    return ", ".join(str(tuple(t.shape)) for t in tensors)


def qkv(batch, lq, lk, d_k, d_v, dtype=torch.float32, device="cpu"):
    return (torch.randn(*batch, lq, d_k, dtype=dtype, device=device),
            torch.randn(*batch, lk, d_k, dtype=dtype, device=device),
            torch.randn(*batch, lk, d_v, dtype=dtype, device=device))


def check_pair(student, q, k, v, mask=None, atol=1e-5, where=""):
    """Student's output vs PyTorch's, weights vs the formula, for one input."""
    out, w = call(student, q, k, v, mask)
    lq, d_v = q.size(-2), v.size(-1)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    assert_tensor(out, f"the output{where}", shape=(*batch, lq, d_v))
    assert_tensor(w, f"the weights{where}", shape=(*batch, lq, k.size(-2)))
    expected_out, expected_w = attention(q, k, v, mask)
    assert_close(w, expected_w, f"the weights tensor{where}", atol=atol)
    rows = mask.any(-1) if mask is not None else None
    if rows is None or rows.all():  # PyTorch's own gives NaN on fully masked rows
        assert_close(out, builtin(q, k, v, mask), f"the output{where}", atol=atol)
    assert_close(out, expected_out, f"the output{where}", atol=atol)
    return out, w


BATCHES = [pytest.param((), id="no-batch-dim"), pytest.param((3,), id="1-batch-dim"),
           pytest.param((2, 3), id="2-batch-dims"), pytest.param((2, 1, 4), id="3-batch-dims")]


# --- gate and tests ---------------------------------------------------------------------

@gate("test-sdpa")
def computes_attention(student):
    """On one small input: weights that form a distribution depending on q, and the output they mix from v."""
    expect_defined(student, NAME)
    gen = torch.Generator().manual_seed(0)
    q, k, v, q2 = (torch.randn(2, n, d, generator=gen) for n, d in [(4, 8), (5, 8), (5, 3), (4, 8)])
    out, w = call(student, q, k, v)
    assert_tensor(out, "the output", shape=(2, 4, 3))
    assert_tensor(w, "the weights", shape=(2, 4, 5))
    _, w2 = call(student, q2, k, v)
    assert_tensor(w2, "the weights", shape=(2, 4, 5))
    expect_attention(NAME, w, out, w.double() @ v.double(), w2)


@spec('Keep each function or class defined at the top level of its answer cell, with exactly the name and signature given',
      'Return `(output, weights)`')
@pytest.mark.weight(0.5)
def test_is_a_function(student):
    """scaled_dot_product_attention is a top-level function that returns (output, weights)"""
    expect_function(student, NAME, "(q, k, v, mask=None)")
    pair(student.scaled_dot_product_attention(torch.randn(2, 3), torch.randn(4, 3), torch.randn(4, 2)))


@spec('any number of batch dimensions (zero, one, or more)', 'the device of `q`')
@pytest.mark.parametrize("batch", BATCHES)
def test_matches_builtin_for_any_batch_dims(student, batch, device):
    """Output and weights match PyTorch for 0 to 3 batch dimensions"""
    q, k, v = qkv(batch, 5, 7, 8, 6, device=device)
    out, w = check_pair(student, q, k, v, where=f" for q, k, v of shapes {shapes(q, k, v)}")
    assert_tensor(out, "the output", device=device)
    assert_tensor(w, "the weights", device=device)


@spec("`q` has shape `(..., Lq, d_k)`, `k` has shape `(..., Lk, d_k)` and `v` has shape")
def test_same_shapes_keep_their_roles(student):
    """q, k and v of one shape (as in self-attention) each play their own role"""
    for batch in [(), (3,)]:
        q, k, v = qkv(batch, 6, 6, 8, 8)  # one shape, three different contents
        check_pair(student, q, k, v, where=f" for q, k, v all of shape {tuple(q.shape)}")


@spec('Any sizes work, including a single query (`Lq = 1`) or a single key (`Lk = 1`)')
@pytest.mark.weight(2)
def test_random_shapes(student):
    """Output and weights are right for random shapes, including single queries and keys"""
    gen = torch.Generator().manual_seed(3)
    configs = [((), 1, 1, 1, 1), ((2,), 1, 4, 3, 2), ((3,), 4, 1, 5, 3)]
    for _ in range(9):
        n_batch = int(torch.randint(0, 4, (), generator=gen))
        batch = tuple(int(s) for s in torch.randint(1, 4, (n_batch,), generator=gen))
        lq, lk, d_k, d_v = (int(s) for s in torch.randint(1, 9, (4,), generator=gen))
        configs.append((batch, lq, lk, d_k * 2, d_v))
    for batch, lq, lk, d_k, d_v in configs:
        q, k, v = qkv(batch, lq, lk, d_k, d_v)
        check_pair(student, q, k, v, where=f" for q, k, v of shapes {shapes(q, k, v)}")


@spec('\\frac{q k^\\top}{\\sqrt{d_k}}', 'with the softmax taken over the last dimension (the keys)')
def test_scaled_by_sqrt_d_k(student):
    """The logits are scaled by 1/sqrt(d_k), with d_k the size of the queries and keys"""
    q, k, v = qkv((2,), 4, 6, 64, 3)
    _, w = call(student, q, k, v)
    expect(tuple(w.shape) == (2, 4, 6), f"the weights should have shape (2, 4, 6), got {tuple(w.shape)}")
    expected = torch.softmax(q @ k.transpose(-2, -1) / 8.0, dim=-1)
    expect(torch.allclose(w, expected, atol=1e-5),
           "with d_k = 64 and d_v = 3 the weights are not softmax(q kᵀ / sqrt(d_k)) over the last "
           "dimension: check the scaling factor and which dimension it comes from")


MASK_SHAPES = [
    pytest.param((), (6, 7), id="mask-(Lq,Lk)"),
    pytest.param((2,), (2, 1, 7), id="mask-(B,1,Lk)"),
    pytest.param((2,), (2, 6, 7), id="mask-(B,Lq,Lk)"),
    pytest.param((2, 3), (1, 1, 7), id="mask-(1,1,Lk)-2-batch-dims"),
    pytest.param((2, 3), (2, 1, 1, 7), id="mask-(B,1,1,Lk)-2-batch-dims"),
]


@spec('a `torch.bool` tensor broadcastable to `(..., Lq, Lk)`', 'Masked keys get exactly zero weight')
@pytest.mark.parametrize("batch, mask_shape", MASK_SHAPES)
def test_mask_broadcasts(student, batch, mask_shape):
    """A bool mask of any shape broadcastable to (..., Lq, Lk) is applied, True = may attend"""
    q, k, v = qkv(batch, 6, 7, 8, 5)
    mask = torch.rand(mask_shape) < 0.6
    mask[..., 0] = True  # every query may attend to something
    where = f" with q of shape {tuple(q.shape)} and a mask of shape {tuple(mask.shape)}"
    out, w = check_pair(student, q, k, v, mask, where=where)
    expect(torch.all(w.masked_select(~mask.expand_as(w)) == 0),
           f"keys where the mask is False must get exactly zero weight{where}")


@spec('the weights of each query still sum to 1 over the keys it may attend to')
def test_masking_equals_removing_keys(student):
    """Masking keys out gives the same output as removing them"""
    q, k, v = qkv((2, 3), 4, 9, 8, 5)
    keep = torch.tensor([True, False, True, True, False, False, True, False, True])
    out, w = call(student, q, k, v, keep[None, :])
    short_out, short_w = call(student, q, k[..., keep, :], v[..., keep, :])
    assert_close(out, short_out, "the output with keys masked out (compared with the keys removed)")
    assert_close(w[..., keep], short_w, "the weights tensor of the allowed keys (compared with the others removed)")
    expect(torch.all(w[..., ~keep] == 0), "masked keys must get exactly zero weight")


@spec('A query that may attend to **no** key at all gets all-zero weights and an all-zero output row, never `NaN`')
@pytest.mark.weight(2)
def test_fully_masked_rows_give_zeros(student):
    """A query that may attend to no key gets zero weights and a zero output, never NaN"""
    q, k, v = qkv((2,), 5, 6, 8, 4)
    mask = torch.rand(2, 5, 6) < 0.5
    mask[..., 0] = True
    mask[0, 1] = False
    mask[1, 3:] = False
    out, w = call(student, q, k, v, mask)
    assert_tensor(out, "the output", shape=(2, 5, 4))
    assert_tensor(w, "the weights", shape=(2, 5, 6))
    expect(not torch.isnan(w).any() and not torch.isnan(out).any(),
           "a query whose mask row is all False gave NaN: it must give zero weights and a zero output")
    dead = ~mask.any(-1)
    expect(torch.all(w[dead] == 0), "a query whose mask row is all False must get all-zero weights")
    expect(torch.all(out[dead] == 0), "a query whose mask row is all False must get an all-zero output")
    expected_out, expected_w = attention(q, k, v, mask)
    assert_close(w[~dead], expected_w[~dead], "the weights tensor of the other queries")
    assert_close(out[~dead], expected_out[~dead], "the output of the other queries")


def check_grads(result, expected, names, atol=1e-8):
    expect(isinstance(result, dict) and "outputs" in result, "gradients could not be computed")
    out, w = pair(result["outputs"])
    assert_tensor(out, "the output for float64 inputs", dtype=torch.float64)
    grads = result.get("grads")
    expect(isinstance(grads, (list, tuple)) and len(grads) == len(names), "gradients could not be computed")
    for name, got, want in zip(names, grads, expected):
        expect(got is not None, f"no gradient flows back to {name}: keep the computation differentiable "
                                "(no detach, no torch.no_grad)")
        assert_tensor(got, f"the gradient with respect to {name}", shape=want.shape, dtype=want.dtype)
        expect(torch.isfinite(got).all(), f"the gradient with respect to {name} is not finite (NaN or inf)")
        assert_close(got, want, f"the gradient with respect to {name}", atol=atol, rtol=1e-6)


def reference_grads(q, k, v, mask, g_out, g_w):
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out, w = attention(q, k, v, mask)
    return torch.autograd.grad([out, w], [q, k, v], [g_out, g_w])


GRAD_CASES = [pytest.param(False, id="no-mask"), pytest.param(True, id="with-mask")]


@spec('gradients flow to `q`, `k` and `v` through both the output and the weights')
@pytest.mark.parametrize("masked", GRAD_CASES)
def test_float64_gradients(student, masked):
    """Gradients with respect to q, k and v are right (float64, through output and weights)"""
    q, k, v = qkv((2, 3), 4, 5, 6, 3, dtype=torch.float64)
    mask = None
    if masked:
        mask = torch.rand(2, 1, 4, 5) < 0.6
        mask[..., 0] = True
    g_out, g_w = torch.randn(2, 3, 4, 3, dtype=torch.float64), torch.randn(2, 3, 4, 5, dtype=torch.float64)
    result = student.vjp(NAME, (q, k, v, mask), wrt=[0, 1, 2], cotangents=[g_out, g_w])
    check_grads(result, reference_grads(q, k, v, mask, g_out, g_w), ["q", "k", "v"])


@spec('For a query that may attend to no key, the gradients stay finite')
def test_fully_masked_rows_have_finite_gradients(student):
    """With a fully masked query, gradients stay finite and right for all the other queries"""
    q, k, v = qkv((2,), 4, 5, 6, 3, dtype=torch.float64)
    mask = torch.rand(2, 4, 5) < 0.6
    mask[..., 0] = True
    mask[0, 2] = False
    mask[1, 0] = False
    g_out, g_w = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 4, 5, dtype=torch.float64)
    result = student.vjp(NAME, (q, k, v, mask), wrt=[0, 1, 2], cotangents=[g_out, g_w])
    check_grads(result, reference_grads(q, k, v, mask, g_out, g_w), ["q", "k", "v"])


EXTREMES = [pytest.param("large-positive", id="logits-1e4"),
            pytest.param("large-negative", id="all-logits-very-negative"),
            pytest.param("masked", id="logits-1e4-with-mask")]


@spec('logits of size $10^4$ (positive or negative) must not overflow or underflow')
@pytest.mark.parametrize("kind", EXTREMES)
def test_extreme_logits(student, kind):
    """Logits of size 1e4 (positive or negative) neither overflow nor underflow"""
    q, k, v = qkv((2,), 4, 6, 8, 3, dtype=torch.float64)
    mask = None
    if kind == "large-positive":
        q = q * 1e4
    elif kind == "large-negative":  # every logit is about -1e4: exp underflows to 0 everywhere
        q, k = q.abs() * 1e3 + 1e3, -(k.abs() + 0.5)
    else:
        q = q * 1e4
        mask = torch.rand(2, 4, 6) < 0.5
        mask[..., 1] = True
    # float32: no inf or NaN, and still a distribution over the allowed keys
    out, w = call(student, q.float(), k.float(), v.float(), mask)
    expect(torch.isfinite(out).all() and torch.isfinite(w).all(),
           "logits of size 1e4 gave inf or NaN in float32: use a numerically stable softmax")
    expect(torch.allclose(w.sum(-1), torch.ones(2, 4), atol=1e-5),
           "with logits of size 1e4 the weights of each query no longer sum to 1: use a numerically stable softmax")
    if mask is not None:
        expect(torch.all(w.masked_select(~mask) == 0), "masked keys must get exactly zero weight, "
                                                       "even when the other logits are huge")
    # float64 (precise enough to compare nearly one-hot weights): the right values
    out, w = call(student, q, k, v, mask)
    expect(torch.isfinite(out).all() and torch.isfinite(w).all(),
           "logits of size 1e4 gave inf or NaN in float64: use a numerically stable softmax")
    expected_out, expected_w = attention(q, k, v, mask)
    assert_close(w, expected_w, "the weights tensor (float64)", atol=1e-6)
    assert_close(out, expected_out, "the output (float64)", atol=1e-6)
    assert_close(out, builtin(q, k, v, mask), "the output (float64)", atol=1e-6)


DTYPES = [pytest.param(torch.float64, 1e-10, id="float64"), pytest.param(torch.float16, 1e-2, id="float16"),
          pytest.param(torch.bfloat16, 5e-2, id="bfloat16")]


@spec('keeps the dtype (float32, float64, float16 or bfloat16) and the device of `q`')
@pytest.mark.parametrize("dtype, atol", DTYPES)
def test_keeps_dtype_and_device(student, dtype, atol, device):
    """The output keeps the dtype and device of q (float64, float16, bfloat16)"""
    q, k, v = qkv((2,), 4, 5, 8, 3, dtype=dtype, device=device)
    out, w = call(student, q, k, v)
    assert_tensor(out, "the output", shape=(2, 4, 3), dtype=dtype, device=device)
    assert_tensor(w, "the weights", shape=(2, 4, 5), device=device)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    expected_out, expected_w = attention(q.to(work), k.to(work), v.to(work))
    assert_close(out.to(work), expected_out.cpu(), f"the output in {dtype}", atol=atol, rtol=atol)
    assert_close(w.to(work), expected_w.cpu(), f"the weights tensor in {dtype}", atol=atol, rtol=atol)


@spec('the inputs are left unchanged (no in-place operations on `q`, `k`, `v` or `mask`)')
def test_inputs_left_unchanged(student):
    """q, k, v and mask are not modified in place"""
    q, k, v = qkv((2,), 4, 5, 8, 3)
    mask = torch.rand(2, 4, 5) < 0.5
    mask[..., 0] = True
    before = [t.clone() for t in (q, k, v, mask)]
    result, after = student.scaled_dot_product_attention.with_inputs(q, k, v, mask)
    pair(result)
    for name, old, new in zip(["q", "k", "v", "mask"], before, after):
        expect(isinstance(new, torch.Tensor) and new.dtype == old.dtype and torch.equal(new, old),
               f"{NAME} changed its input {name} in place: work on new tensors "
               "(masked_fill, not masked_fill_; q / x, not q /= x)")


@spec('`True` means "this query may attend to this key"')
def test_causal_mask_hides_the_future(student):
    """With a causal mask, changing later tokens never changes earlier outputs"""
    L = 7
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    q, k, v = qkv((2,), L, L, 8, 4)
    out, _ = call(student, q, k, v, causal)
    assert_tensor(out, "the output", shape=(2, L, 4))
    for t in (1, 4, 6):
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        q2[:, t:], k2[:, t:], v2[:, t:] = (torch.randn_like(x[:, t:]) * 3 for x in (q, k, v))
        out2, _ = call(student, q2, k2, v2, causal)
        assert_close(out2[:, :t], out[:, :t],
                     f"with a causal mask, the outputs before position {t} after changing the tokens from {t} on")
