"""Hidden tests for SelfAttention(d_model, d_k, d_v=None, causal=False)."""
import pytest
import torch
import torch.nn.functional as F

from autograder.student import Ref
from autograder.suite import (assert_close, assert_tensor, attention, describe, expect, expect_attention,
                              expect_defined, expect_module_class, expect_pair, gate, spec,
                              twin_modules)

pytestmark = pytest.mark.component("test-self")

NAME = "SelfAttention"
PARAMS = ("W_q.weight", "W_k.weight", "W_v.weight")


# --- helpers (trusted side) -----------------------------------------------------------

def make(student, reference, d_model, d_k, d_v=None, causal=False, dtype=None, device=None, grad=False):
    """A student SelfAttention holding a fresh reference layer's weights."""
    kwargs = {"causal": causal} if d_v is None else {"d_v": d_v, "causal": causal}
    return twin_modules(student, reference, "SelfAttention", d_model, d_k, dtype=dtype, device=device, grad=grad,
                        **kwargs)


def combined(mask, L, causal, device="cpu"):
    if not causal:
        return mask
    future = torch.ones(L, L, dtype=torch.bool, device=device).tril()
    return future if mask is None else mask & future


def expected(w, x, mask=None, causal=False):
    """PyTorch's attention on the layer's projections; weights from the formula (zero rows when all masked)."""
    q, k, v = x @ w["W_q.weight"].T, x @ w["W_k.weight"].T, x @ w["W_v.weight"].T
    mask = combined(mask, x.size(-2), causal, x.device)
    out, weights = attention(q, k, v, mask)
    if mask is None or mask.any(-1).all():
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out, weights


def pair(result):
    return expect_pair(result, f"{NAME}.forward", ("output", "weights"))


def run(layer, x, mask=None, d_v=None):
    out, w = pair(layer(x, mask))
    B, L = x.shape[:2]
    if d_v is not None:
        assert_tensor(out, "the output", shape=(B, L, d_v))
    assert_tensor(w, "the weights", shape=(B, L, L))
    return out, w


def key_padding(lengths, L):
    return (torch.arange(L)[None, :] < torch.as_tensor(lengths)[:, None])[:, None, :]  # (B, 1, L)


# --- gate and tests ---------------------------------------------------------------------

@gate("test-self")
def computes_attention(student):
    """A layer of the student's own: weights that form a distribution depending on x, and the
    output they mix from x's values (x W_vᵀ)."""
    expect_defined(student, NAME)
    layer = student.SelfAttention(8, 4).requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    x, x2 = torch.randn(2, 5, 8, generator=gen), torch.randn(2, 5, 8, generator=gen)
    out, w = run(layer, x, d_v=4)
    _, w2 = run(layer, x2, d_v=4)
    W_v = layer.W_v.weight.get()
    expect(isinstance(W_v, torch.Tensor) and tuple(W_v.shape) == (4, 8),
           f"{NAME}(8, 4).W_v.weight should be a tensor of shape (4, 8)")
    expect_attention(NAME, w, out, w.double() @ (x.double() @ W_v.double().T), w2)


@spec('Keep each function or class defined at the top level of its answer cell, with exactly the name and signature given',
      'an `nn.Module` with exactly these submodules')
@pytest.mark.weight(0.5)
def test_is_an_nn_module_class(student):
    """SelfAttention is a top-level nn.Module class"""
    expect_module_class(student, NAME, 8, 4)


@spec('`self.W_v = nn.Linear(d_model, d_v, bias=False)`', '`d_v` defaults to `d_k`')
@pytest.mark.parametrize("d_v", [6, None], ids=["d_v-6", "d_v-default"])
def test_submodules(student, d_v):
    """Submodules W_q, W_k, W_v are nn.Linear with the specified shapes and no bias; d_v defaults to d_k"""
    layer = student.SelfAttention(8, 4) if d_v is None else student.SelfAttention(8, 4, d_v=d_v)
    state = layer.state_dict()
    expect(isinstance(state, dict) and set(state) == set(PARAMS),
           f"the parameters of {NAME} should be exactly {', '.join(PARAMS)} (three nn.Linear without bias), "
           f"got {', '.join(sorted(state)) if isinstance(state, dict) else describe(state)}")
    dv = 4 if d_v is None else d_v
    what = "SelfAttention(8, 4)" if d_v is None else f"SelfAttention(8, 4, d_v={d_v})"
    for name, shape in [("W_q", (4, 8)), ("W_k", (4, 8)), ("W_v", (dv, 8))]:
        sub = getattr(layer, name).get()
        expect(isinstance(sub, Ref) and sub.type_name == "Linear",
               f"self.{name} should be an nn.Linear, got {describe(sub)}")
        assert_tensor(state[f"{name}.weight"], f"self.{name}.weight of {what}", shape=shape)
        expect(getattr(layer, name).bias.get() is None, f"self.{name} must have bias=False")


@spec('returns `(out, weights)` with shapes `(B, L, d_v)` and `(B, L, L)`')
def test_output_shapes(student):
    """Output and weights have shapes (B, L, d_v) and (B, L, L)"""
    for B, L, d_model, d_k, d_v, causal in [(2, 5, 8, 4, 6, False), (1, 1, 3, 2, 5, True), (3, 7, 4, 6, None, True)]:
        layer = student.SelfAttention(d_model, d_k, d_v=d_v, causal=causal).requires_grad_(False)
        out, w = pair(layer(torch.randn(B, L, d_model)))
        dv = d_k if d_v is None else d_v
        where = f" of SelfAttention({d_model}, {d_k}, d_v={d_v}, causal={causal}) for x of shape {(B, L, d_model)}"
        assert_tensor(out, "the output" + where, shape=(B, L, dv))
        assert_tensor(w, "the weights" + where, shape=(B, L, L))


BUILTIN_CASES = [
    pytest.param(False, None, id="no-mask"),
    pytest.param(True, None, id="causal"),
    pytest.param(False, "(B,1,L)", id="mask-(B,1,L)"),
    pytest.param(False, "(B,L,L)", id="mask-(B,L,L)"),
    pytest.param(True, "(L,L)", id="causal-and-mask-(L,L)"),
]


def some_mask(shape_name, B, L):
    shape = {"(B,1,L)": (B, 1, L), "(B,L,L)": (B, L, L), "(L,L)": (L, L)}[shape_name]
    mask = torch.rand(shape) < 0.6
    mask[..., 0] = True
    return mask


@spec('attention over the queries `self.W_q(x)`, keys `self.W_k(x)` and values `self.W_v(x)`')
@pytest.mark.parametrize("causal, mask_shape", BUILTIN_CASES)
def test_matches_builtin_on_projections(student, reference, causal, mask_shape):
    """With given weights, the result is PyTorch's attention on W_q x, W_k x, W_v x"""
    B, L = 3, 6
    layer, _, w = make(student, reference, 8, 4, 5, causal=causal)
    x = torch.randn(B, L, 8)
    mask = some_mask(mask_shape, B, L) if mask_shape else None
    out, weights = run(layer, x, mask, d_v=5)
    where = f" (causal={causal}, " + (f"mask of shape {tuple(mask.shape)})" if mask is not None else "no mask)")
    want_out, want_w = expected(w, x, mask, causal)
    assert_close(weights, want_w, "the weights tensor" + where)
    assert_close(out, want_out, "the output" + where)


@spec('attention over the queries `self.W_q(x)`, keys `self.W_k(x)` and values `self.W_v(x)`')
def test_matches_reference_with_same_weights(student, reference):
    """With the same weights, results are right for random sizes, causal or not"""
    gen = torch.Generator().manual_seed(11)
    for i in range(6):
        B, L, d_model, d_k, d_v = (int(s) for s in torch.randint(1, 9, (5,), generator=gen))
        causal = bool(i % 2)
        layer, ref, w = make(student, reference, d_model, d_k, d_v, causal=causal)
        x = torch.randn(B, L, d_model)
        out, weights = run(layer, x, d_v=d_v)
        where = f" of SelfAttention({d_model}, {d_k}, d_v={d_v}, causal={causal}) for x of shape {(B, L, d_model)}"
        # The reference solution and, independently of it, PyTorch's attention on the projections.
        for want_out, want_w in (ref(x), expected(w, x, causal=causal)):
            assert_close(weights, want_w, "the weights tensor" + where)
            assert_close(out, want_out, "the output" + where)


@spec('the causal mask is combined with any mask given (a key is allowed only when both allow it)')
@pytest.mark.weight(2)
@pytest.mark.parametrize("mask_shape", ["(B,1,L)", "(B,L,L)"], ids=["padding-(B,1,L)", "mask-(B,L,L)"])
def test_causal_combined_with_mask(student, reference, mask_shape):
    """With causal=True and a mask, a key is allowed only when both allow it"""
    B, L = 3, 7
    layer, _, w = make(student, reference, 8, 4, 3, causal=True)
    x = torch.randn(B, L, 8)
    if mask_shape == "(B,1,L)":
        mask = key_padding([7, 3, 5], L)
    else:
        mask = torch.rand(B, L, L) < 0.6
        mask |= torch.eye(L, dtype=torch.bool)
    out, weights = run(layer, x, mask, d_v=3)
    allowed = mask & torch.ones(L, L, dtype=torch.bool).tril()
    expect(torch.all(weights.masked_select(~allowed.expand(B, L, L)) == 0),
           f"with causal=True and a mask of shape {tuple(mask.shape)}, a key must get zero weight when the mask "
           "forbids it OR it is in the future: combine the two masks with &")
    want_out, want_w = expected(w, x, mask, causal=True)
    assert_close(weights, want_w, f"the weights tensor with causal=True and a mask of shape {tuple(mask.shape)}")
    assert_close(out, want_out, f"the output with causal=True and a mask of shape {tuple(mask.shape)}")


def future_check(student, reference, mask):
    B, L = 2, 7
    layer, _, _ = make(student, reference, 8, 4, 3, causal=True)
    x = torch.randn(B, L, 8)
    out, weights = run(layer, x, mask, d_v=3)
    expect(not weights.triu(diagonal=1).any(), "with causal=True no position may attend to a later one")
    for t in (1, 3, 6):
        x2 = x.clone()
        x2[:, t:] = torch.randn(B, L - t, 8) * 3
        out2, _ = run(layer, x2, mask, d_v=3)
        assert_close(out2[:, :t], out[:, :t],
                     f"with causal=True, the outputs before position {t} after changing the tokens from {t} on")


@spec('so that no position ever sees a later one')
@pytest.mark.weight(1.5)
def test_causal_hides_the_future(student, reference):
    """With causal=True, changing later tokens never changes earlier outputs"""
    future_check(student, reference, None)


@spec('combined with any mask given', 'so that no position ever sees a later one')
def test_causal_hides_the_future_with_a_mask(student, reference):
    """With causal=True and a mask given, changing later tokens never changes earlier outputs"""
    future_check(student, reference, key_padding([7, 6], 7))


@spec('attention over the queries `self.W_q(x)`, keys `self.W_k(x)` and values `self.W_v(x)`')
def test_permutation_equivariance(student, reference):
    """Without a mask, permuting the tokens permutes outputs and weights the same way"""
    layer, _, _ = make(student, reference, 8, 4, 5)
    x = torch.randn(2, 6, 8)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    out, weights = run(layer, x, d_v=5)
    out_p, weights_p = run(layer, x[:, perm], d_v=5)
    assert_close(out_p, out[:, perm], "the output for permuted tokens (compared with the permuted output)")
    assert_close(weights_p, weights[:, perm][:, :, perm],
                 "the weights tensor for permuted tokens (compared with the permuted weights)")


def local_vjp(w, x, mask, causal, cotangents):
    """Outputs and gradients of the specification, by autograd in this process."""
    w = {k: t.detach().clone().requires_grad_(True) for k, t in w.items()}
    x = x.detach().clone().requires_grad_(True)
    outputs = expected(w, x, mask, causal)
    grads = torch.autograd.grad(outputs, [x, *w.values()], cotangents)
    return {"outputs": tuple(o.detach() for o in outputs), "grads": grads[:1], "param_grads": dict(zip(w, grads[1:]))}


@spec('gradients flow to `x` and to the three weight matrices')
@pytest.mark.weight(1.5)
@pytest.mark.parametrize("causal, masked", [(False, False), (True, True)], ids=["no-mask", "causal-and-mask"])
def test_float64_gradients(student, reference, causal, masked):
    """Gradients for x and the three weight matrices are right (float64)"""
    B, L = 2, 5
    layer, _, w = make(student, reference, 6, 4, 3, causal=causal, dtype=torch.float64, grad=True)
    x = torch.randn(B, L, 6, dtype=torch.float64)
    mask = key_padding([5, 3], L) if masked else None
    cot = [torch.randn(B, L, 3, dtype=torch.float64), torch.randn(B, L, L, dtype=torch.float64)]
    got = student.vjp(layer, (x, mask), wrt=[0], cotangents=cot)
    want = local_vjp(w, x, mask, causal, cot)
    expect(isinstance(got, dict) and {"outputs", "grads", "param_grads"} <= set(got), "gradients could not be computed")
    out, weights = pair(got["outputs"])
    assert_close(out, want["outputs"][0], "the output in float64", atol=1e-10)
    assert_close(weights, want["outputs"][1], "the weights tensor in float64", atol=1e-10)
    g = got["grads"][0] if isinstance(got["grads"], (list, tuple)) and got["grads"] else None
    expect(g is not None, "no gradient flows back to x: keep the computation differentiable")
    expect(isinstance(g, torch.Tensor) and torch.isfinite(g).all(), "the gradient with respect to x is not finite")
    assert_close(g, want["grads"][0], "the gradient with respect to x", atol=1e-9, rtol=1e-7)
    for name in PARAMS:
        pg = got["param_grads"].get(name) if isinstance(got["param_grads"], dict) else None
        expect(pg is not None, f"no gradient reaches the parameter {name}")
        expect(isinstance(pg, torch.Tensor) and torch.isfinite(pg).all(),
               f"the gradient of the parameter {name} is not finite (NaN or inf)")
        assert_close(pg, want["param_grads"][name], f"the gradient of the parameter {name}", atol=1e-9, rtol=1e-7)


@spec('the outputs keep the dtype and device of the layer and of `x`')
@pytest.mark.parametrize("causal", [False, True], ids=["plain", "causal"])
def test_keeps_dtype_and_device(student, reference, causal, device):
    """A layer moved to float64 and a device gives results in float64, on that device"""
    layer, _, w = make(student, reference, 8, 4, 3, causal=causal, dtype=torch.float64, device=device)
    x = torch.randn(2, 5, 8, dtype=torch.float64, device=device)
    mask = key_padding([5, 3], 5).to(device)
    out, weights = run(layer, x, mask, d_v=3)
    assert_tensor(out, "the output", dtype=torch.float64, device=device)
    assert_tensor(weights, "the weights", dtype=torch.float64, device=device)
    want_out, want_w = expected({k: t.cpu() for k, t in w.items()}, x.cpu(), mask.cpu(), causal)
    assert_close(weights, want_w, "the weights tensor in float64", atol=1e-10)
    assert_close(out, want_out, "the output in float64", atol=1e-10)


@spec('the inputs `x` and `mask` are not modified')
def test_inputs_left_unchanged(student, reference):
    """x and mask are not modified in place"""
    layer, _, _ = make(student, reference, 8, 4, 3, causal=True)
    x, mask = torch.randn(2, 5, 8), torch.rand(2, 5, 5) < 0.6
    mask |= torch.eye(5, dtype=torch.bool)
    before = [x.clone(), mask.clone()]
    result, after = layer.with_inputs(x, mask)
    pair(result)
    for name, old, new in zip(["x", "mask"], before, after):
        expect(isinstance(new, torch.Tensor) and new.dtype == old.dtype and torch.equal(new, old),
               f"forward changed its input {name} in place: build a new mask (mask & causal, not mask &= causal)")


@spec('a query that may attend to no key gets zero weights and a zero output')
def test_fully_masked_rows_give_zeros(student, reference):
    """A query that may attend to no key gets zero weights and a zero output, never NaN"""
    B, L = 3, 5
    layer, _, w = make(student, reference, 8, 4, 3, causal=True)
    x = torch.randn(B, L, 8)
    mask = key_padding([5, 0, 3], L)  # the second sequence is all padding
    out, weights = run(layer, x, mask, d_v=3)
    expect(not torch.isnan(out).any() and not torch.isnan(weights).any(),
           "a query whose keys are all masked gave NaN: it must give zero weights and a zero output")
    expect(torch.all(weights[1] == 0) and torch.all(out[1] == 0),
           "a query whose keys are all masked must get all-zero weights and an all-zero output")
    want_out, want_w = expected(w, x, mask, causal=True)
    assert_close(weights, want_w, "the weights tensor with an all-padding sequence in the batch")
    assert_close(out, want_out, "the output with an all-padding sequence in the batch")
