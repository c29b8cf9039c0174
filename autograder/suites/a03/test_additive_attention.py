"""Hidden tests for AdditiveAttention(query_dim, key_dim, hidden_dim)."""
import pytest
import torch

from autograder.student import Ref
from autograder.suite import (assert_close, assert_tensor, describe, expect, expect_attention,
                              expect_defined, expect_module_class, expect_pair, gate, spec,
                              twin_modules)

pytestmark = pytest.mark.component("test-additive")

NAME = "AdditiveAttention"
PARAMS = ("W_q.weight", "W_k.weight", "w.weight")


# --- helpers (trusted side) -----------------------------------------------------------

def make(student, reference, qd, kd, hd, dtype=None, device=None, grad=False):
    """A student AdditiveAttention holding a fresh reference layer's weights."""
    return twin_modules(student, reference, "AdditiveAttention", qd, kd, hd, dtype=dtype, device=device, grad=grad)


def formula(w, query, keys, values, mask=None):
    """The specification, written out, with the weights w (a state dict)."""
    hidden = torch.tanh((query @ w["W_q.weight"].T)[:, None, :] + keys @ w["W_k.weight"].T)
    scores = (hidden @ w["w.weight"].T).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    alpha = torch.softmax(scores, dim=-1)
    if mask is not None:
        alpha = alpha * mask
    return (alpha[:, :, None] * values).sum(1), alpha


def inputs(B, L, qd, kd, dv, dtype=torch.float32, device="cpu"):
    return (torch.randn(B, qd, dtype=dtype, device=device), torch.randn(B, L, kd, dtype=dtype, device=device),
            torch.randn(B, L, dv, dtype=dtype, device=device))


def pair(result):
    return expect_pair(result, f"{NAME}.forward", ("context", "weights"))


def run(layer, query, keys, values, mask=None):
    context, w = pair(layer(query, keys, values, mask))
    B, L = keys.shape[:2]
    assert_tensor(context, "the context", shape=(B, values.size(-1)))
    assert_tensor(w, "the weights", shape=(B, L))
    return context, w


def random_mask(B, L, p=0.6):
    mask = torch.rand(B, L) < p
    mask[:, 0] = True
    return mask


# --- gate and tests ---------------------------------------------------------------------

@gate("test-additive")
def computes_attention(student):
    """A layer of the student's own: weights that form a distribution depending on the query, and
    the context they mix from the values."""
    expect_defined(student, NAME)
    layer = student.AdditiveAttention(6, 5, 8).requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    query, keys, values, query2 = (torch.randn(*shape, generator=gen) for shape in [(3, 6), (3, 4, 5), (3, 4, 2),
                                                                                      (3, 6)])
    context, w = run(layer, query, keys, values)
    _, w2 = run(layer, query2, keys, values)
    expect_attention(NAME, w, context, (w.double()[:, :, None] * values.double()).sum(1), w2)


@spec('Keep each function or class defined at the top level of its answer cell, with exactly the name and signature given',
      'an `nn.Module` with exactly these submodules')
@pytest.mark.weight(0.5)
def test_is_an_nn_module_class(student):
    """AdditiveAttention is a top-level nn.Module class"""
    expect_module_class(student, NAME, 6, 4, 8)


@spec('`self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)`', '`self.w = nn.Linear(hidden_dim, 1, bias=False)`')
@pytest.mark.parametrize("dims", [(6, 4, 8), (3, 5, 2)], ids=["6-4-8", "3-5-2"])
def test_submodules(student, dims):
    """Submodules W_q, W_k, w are nn.Linear with the specified shapes and no bias"""
    qd, kd, hd = dims
    layer = student.AdditiveAttention(qd, kd, hd)
    state = layer.state_dict()
    expect(isinstance(state, dict) and set(state) == set(PARAMS),
           f"the parameters of {NAME} should be exactly {', '.join(PARAMS)} (three nn.Linear without bias), "
           f"got {', '.join(sorted(state)) if isinstance(state, dict) else describe(state)}")
    for name, shape in [("W_q", (hd, qd)), ("W_k", (hd, kd)), ("w", (1, hd))]:
        sub = getattr(layer, name).get()
        expect(isinstance(sub, Ref) and sub.type_name == "Linear",
               f"self.{name} should be an nn.Linear, got {describe(sub)}")
        assert_tensor(state[f"{name}.weight"], f"self.{name}.weight (with query_dim={qd}, key_dim={kd}, "
                      f"hidden_dim={hd})", shape=shape)
        expect(getattr(layer, name).bias.get() is None, f"self.{name} must have bias=False")


@spec('\\mathrm{score}(q, k_j) = \\tanh(q W_q + k_j W_k)\\, w')
@pytest.mark.weight(2)
def test_matches_formula_with_same_weights(student, reference):
    """With given weights, context and weights are softmax(tanh(q W_q + k W_k) w) and its sum of values"""
    gen = torch.Generator().manual_seed(7)
    configs = [(2, 5, 6, 4, 8, 3), (1, 1, 2, 3, 4, 5)]
    for _ in range(4):
        configs.append(tuple(int(s) for s in torch.randint(1, 9, (6,), generator=gen)))
    for B, L, qd, kd, hd, dv in configs:
        layer, _, w = make(student, reference, qd, kd, hd)
        query, keys, values = inputs(B, L, qd, kd, dv)
        where = f" (B={B}, L={L}, query_dim={qd}, key_dim={kd}, hidden_dim={hd}, d_v={dv})"
        context, alpha = run(layer, query, keys, values)
        expected_context, expected_alpha = formula(w, query, keys, values)
        assert_close(alpha, expected_alpha, "the weights tensor" + where)
        assert_close(context, expected_context, "the context" + where)


@spec(r"\mathrm{score}(q, k_j) = \tanh(q W_q + k_j W_k)\, w",
      r"\mathrm{context} = \sum_j \alpha_j \, \mathrm{value}_j")
def test_arguments_of_one_size_keep_their_roles(student, reference):
    """With query, keys and values all of one size, each plays its own role (and W_q, W_k theirs)"""
    layer, _, w = make(student, reference, 6, 6, 5)
    query, keys, values = inputs(3, 4, 6, 6, 6)  # one size, different contents
    context, alpha = run(layer, query, keys, values)
    expected_context, expected_alpha = formula(w, query, keys, values)
    where = " with query_dim = key_dim = d_v = 6"
    assert_close(alpha, expected_alpha, "the weights tensor" + where)
    assert_close(context, expected_context, "the context" + where)


@spec('an optional bool `mask` `(B, L)` (`True` = may attend)')
def test_matches_reference_with_mask(student, reference):
    """With the same weights and a mask, the results are right"""
    layer, ref, w = make(student, reference, 5, 7, 6)
    query, keys, values = inputs(4, 8, 5, 7, 3)
    mask = random_mask(4, 8)
    context, alpha = run(layer, query, keys, values, mask)
    expected_context, expected_alpha = ref(query, keys, values, mask)
    assert_close(alpha, expected_alpha, "the weights tensor with a mask")
    assert_close(context, expected_context, "the context with a mask")
    assert_close(context, formula(w, query, keys, values, mask)[0], "the context with a mask")


@spec('the softmax runs over the `L` positions')
def test_weights_are_a_distribution(student, reference):
    """The weights are non-negative and sum to 1 over the L positions"""
    layer, _, _ = make(student, reference, 4, 4, 6)
    _, alpha = run(layer, *inputs(5, 7, 4, 4, 2))
    expect(bool((alpha >= 0).all()), "attention weights must be non-negative")
    expect(torch.allclose(alpha.sum(-1), torch.ones(5), atol=1e-5),
           "the weights of each batch item must sum to 1 over the L positions (softmax over the last dimension)")


@spec('masked positions get exactly zero weight')
def test_masking_equals_removing_keys(student, reference):
    """Masked positions get exactly zero weight, and masking them equals removing them"""
    layer, _, _ = make(student, reference, 5, 4, 6)
    query, keys, values = inputs(3, 7, 5, 4, 2)
    keep = torch.tensor([True, False, True, True, False, True, False])
    context, alpha = run(layer, query, keys, values, keep.expand(3, 7).clone())
    expect(torch.all(alpha[:, ~keep] == 0), "positions where the mask is False must get exactly zero weight")
    short_context, short_alpha = run(layer, query, keys[:, keep], values[:, keep])
    assert_close(alpha[:, keep], short_alpha,
                 "the weights tensor of the allowed positions (compared with the others removed)")
    assert_close(context, short_context, "the context with positions masked out (compared with them removed)")


@spec('a fully masked row gives zero weights and a zero context (no `NaN`)')
@pytest.mark.weight(2)
def test_fully_masked_row_gives_zeros(student, reference):
    """A fully masked batch item gets zero weights and a zero context, never NaN"""
    layer, _, w = make(student, reference, 5, 4, 6)
    query, keys, values = inputs(3, 6, 5, 4, 2)
    mask = random_mask(3, 6)
    mask[1] = False
    context, alpha = run(layer, query, keys, values, mask)
    expect(not torch.isnan(alpha).any() and not torch.isnan(context).any(),
           "a batch item whose mask is all False gave NaN: it must give zero weights and a zero context")
    expect(torch.all(alpha[1] == 0), "a batch item whose mask is all False must get all-zero weights")
    expect(torch.all(context[1] == 0), "a batch item whose mask is all False must get an all-zero context")
    expected_context, expected_alpha = formula(w, query, keys, values, mask)
    assert_close(alpha[[0, 2]], expected_alpha[[0, 2]], "the weights tensor of the other batch items")
    assert_close(context[[0, 2]], expected_context[[0, 2]], "the context of the other batch items")


def check_grads(got, want, arg_names):
    """got: the student's vjp; want: (outputs, input grads, {param: grad}) computed here."""
    expect(isinstance(got, dict) and {"outputs", "grads", "param_grads"} <= set(got), "gradients could not be computed")
    (want_context, want_alpha), want_grads, want_params = want
    context, alpha = pair(got["outputs"])
    assert_close(context, want_context, "the context in float64", atol=1e-10)
    assert_close(alpha, want_alpha, "the weights tensor in float64", atol=1e-10)
    grads = got["grads"] if isinstance(got["grads"], (list, tuple)) else []
    expect(len(grads) == len(arg_names), "gradients could not be computed")
    for name, g, r in zip(arg_names, grads, want_grads):
        expect(g is not None, f"no gradient flows back to {name}: keep the computation differentiable")
        expect(isinstance(g, torch.Tensor) and torch.isfinite(g).all(),
               f"the gradient with respect to {name} is not finite (NaN or inf)")
        assert_close(g, r, f"the gradient with respect to {name}", atol=1e-9, rtol=1e-7)
    for name in PARAMS:
        g = got["param_grads"].get(name) if isinstance(got["param_grads"], dict) else None
        expect(g is not None, f"no gradient reaches the parameter {name}")
        expect(isinstance(g, torch.Tensor) and torch.isfinite(g).all(),
               f"the gradient of the parameter {name} is not finite (NaN or inf)")
        assert_close(g, want_params[name], f"the gradient of the parameter {name}", atol=1e-9, rtol=1e-7)


def local_vjp(w, args, cotangents):
    """Outputs and gradients of the formula, by autograd in this process."""
    w = {k: t.detach().clone().requires_grad_(True) for k, t in w.items()}
    query, keys, values, mask = args
    query, keys, values = (t.detach().clone().requires_grad_(True) for t in (query, keys, values))
    outputs = formula(w, query, keys, values, mask)
    grads = torch.autograd.grad(outputs, [query, keys, values, *w.values()], cotangents)
    return tuple(o.detach() for o in outputs), grads[:3], dict(zip(w, grads[3:]))


def grads_case(student, reference, mask):
    layer, _, w = make(student, reference, 5, 4, 6, dtype=torch.float64, grad=True)
    B, L = mask.shape if mask is not None else (3, 6)
    query, keys, values = inputs(B, L, 5, 4, 3, dtype=torch.float64)
    cot = [torch.randn(B, 3, dtype=torch.float64), torch.randn(B, L, dtype=torch.float64)]
    args = (query, keys, values, mask)
    got = student.vjp(layer, args, wrt=[0, 1, 2], cotangents=cot)
    check_grads(got, local_vjp(w, args, cot), ["query", "keys", "values"])


@spec('Gradients flow to `query`, `keys`, `values` and the three weight matrices')
@pytest.mark.weight(1.5)
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "with-mask"])
def test_float64_gradients(student, reference, masked):
    """Gradients for query, keys, values and the three weight matrices are right (float64)"""
    grads_case(student, reference, random_mask(3, 6) if masked else None)


@spec('and stay finite for a fully masked row')
def test_fully_masked_row_has_finite_gradients(student, reference):
    """With a fully masked batch item, all gradients stay finite and right"""
    mask = random_mask(3, 6)
    mask[0] = False
    grads_case(student, reference, mask)


DTYPES = [pytest.param(torch.float64, 1e-10, id="float64"), pytest.param(torch.bfloat16, 5e-2, id="bfloat16")]


@spec('the outputs keep the dtype and device of the layer and its inputs (float32, float64, bfloat16)')
@pytest.mark.parametrize("dtype, atol", DTYPES)
def test_keeps_dtype_and_device(student, reference, dtype, atol, device):
    """A layer moved to a dtype and device gives results in that dtype, on that device"""
    layer, _, w = make(student, reference, 5, 4, 6, dtype=dtype, device=device)
    query, keys, values = inputs(2, 5, 5, 4, 3, dtype=dtype, device=device)
    mask = random_mask(2, 5)
    context, alpha = run(layer, query, keys, values, mask.to(device))
    assert_tensor(context, "the context", dtype=dtype, device=device)
    assert_tensor(alpha, "the weights", device=device)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    w = {k: t.to(work).cpu() for k, t in w.items()}
    expected_context, expected_alpha = formula(w, *(t.to(work).cpu() for t in (query, keys, values)), mask)
    assert_close(alpha.to(work), expected_alpha, f"the weights tensor in {dtype}", atol=atol, rtol=atol)
    assert_close(context.to(work), expected_context, f"the context in {dtype}", atol=atol, rtol=atol)


@spec('the inputs are not modified')
def test_inputs_left_unchanged(student, reference):
    """query, keys, values and mask are not modified in place"""
    layer, _, _ = make(student, reference, 5, 4, 6)
    args = [*inputs(3, 6, 5, 4, 2), random_mask(3, 6)]
    before = [t.clone() for t in args]
    result, after = layer.with_inputs(*args)
    pair(result)
    for name, old, new in zip(["query", "keys", "values", "mask"], before, after):
        expect(isinstance(new, torch.Tensor) and new.dtype == old.dtype and torch.equal(new, old),
               f"forward changed its input {name} in place: work on new tensors (masked_fill, not masked_fill_)")


@spec('scores of size $10^4$ must not overflow')
def test_large_scores_are_stable(student, reference):
    """Scores of size 1e4 do not overflow the softmax"""
    layer, ref, w = make(student, reference, 5, 4, 6)
    big = {k: t.clone() for k, t in w.items()}
    big["w.weight"] = big["w.weight"] * 1e4
    layer.load_state_dict(big)
    query, keys, values = inputs(3, 6, 5, 4, 2)
    mask = random_mask(3, 6)
    context, alpha = run(layer, query, keys, values, mask)
    expect(torch.isfinite(context).all() and torch.isfinite(alpha).all(),
           "scores of size 1e4 gave inf or NaN: use a numerically stable softmax")
    expected_context, expected_alpha = formula({k: t.double() for k, t in big.items()}, query.double(),
                                               keys.double(), values.double(), mask)
    assert_close(alpha, expected_alpha.float(), "the weights tensor with large scores", atol=1e-4)
    assert_close(context, expected_context.float(), "the context with large scores", atol=1e-4)


@spec('Each batch item is attended on its own')
def test_batch_items_are_independent(student, reference):
    """Each batch item is attended on its own (softmax over positions, not over the batch)"""
    layer, _, _ = make(student, reference, 5, 4, 6)
    query, keys, values = inputs(4, 6, 5, 4, 3)
    context, alpha = run(layer, query, keys, values)
    for b in (0, 3):
        c1, a1 = run(layer, query[b:b + 1], keys[b:b + 1], values[b:b + 1])
        assert_close(a1[0], alpha[b], "the weights tensor of one batch item run alone (compared with it in a batch)")
        assert_close(c1[0], context[b], "the context of one batch item run alone (compared with it in a batch)")


@spec('\\mathrm{context} = \\sum_j \\alpha_j \\, \\mathrm{value}_j')
def test_single_position(student, reference):
    """With L = 1 the weight is 1 and the context is that position's value"""
    layer, _, _ = make(student, reference, 3, 3, 4)
    query, keys, values = inputs(2, 1, 3, 3, 5)
    context, alpha = run(layer, query, keys, values)
    assert_close(alpha, torch.ones(2, 1), "the weights tensor with a single position")
    assert_close(context, values[:, 0], "the context with a single position")
