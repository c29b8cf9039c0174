"""Banks for `course audit a03` (see autograder/banks.py): the mistakes the hidden
suite must catch, the correct alternatives it must accept, and hollow answers
its gates must stop."""
from autograder.banks import GATE, Alternative, Hollow, Mistake

# SelfAttention calls the student's own scaled_dot_product_attention and causal_mask.
DEPENDS = {"test-self": ["test-sdpa", "test-causal-mask"]}

# Arguments that can share a shape; each pair has a mistake that swaps them.
ROLES = {
    "test-sdpa": [("q", "k"), ("k", "v")],
    "test-additive": [("keys", "values"), ("W_q", "W_k")],
    "test-self": [("W_q", "W_k"), ("W_k", "W_v")],
}

SDPA, CAUSAL, PADDING, ADDITIVE, SELF = "test-sdpa", "test-causal-mask", "test-padding-mask", "test-additive", "test-self"

# --- mistakes -----------------------------------------------------------------------------------

MISTAKES = [
    # scaled_dot_product_attention
    Mistake(SDPA, "no-1-over-sqrt-dk-scaling", edits=[(" / math.sqrt(d_k)", "")],
            caught_by=["test_scaled_by_sqrt_d_k"]),
    Mistake(SDPA, "scaled-by-dk-not-sqrt-dk", edits=[("/ math.sqrt(d_k)", "/ d_k")],
            caught_by=["test_scaled_by_sqrt_d_k"]),
    Mistake(SDPA, "scaled-by-sqrt-d_v", edits=[("d_k = q.size(-1)", "d_k = v.size(-1)")],
            caught_by=["test_scaled_by_sqrt_d_k"]),
    Mistake(SDPA, "softmax-over-queries", edits=[("torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=-2)")],
            caught_by=[GATE]),
    Mistake(SDPA, "mask-polarity-inverted", edits=[("masked_fill(~mask,", "masked_fill(mask,"),
                                                    ("weights * mask", "weights * ~mask")],
            caught_by=["test_mask_broadcasts"]),
    Mistake(SDPA, "minus-inf-fill-gives-nan-rows", edits=[("torch.finfo(scores.dtype).min", 'float("-inf")')],
            caught_by=["test_fully_masked_rows_give_zeros"]),
    Mistake(SDPA, "k.T-breaks-batch-dims", edits=[("k.transpose(-2, -1)", "k.T")], caught_by=[GATE]),
    Mistake(SDPA, "divides-q-in-place", edits=[("    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)",
                                                "    q /= math.sqrt(d_k)\n    scores = q @ k.transpose(-2, -1)")],
            caught_by=["test_inputs_left_unchanged"]),
    Mistake(SDPA, "mask-inverted-in-place", edits=[("scores.masked_fill(~mask,", "scores.masked_fill(mask.logical_not_(),"),
                                                    ("weights * mask", "weights * mask.logical_not()")],
            caught_by=["test_inputs_left_unchanged"]),
    Mistake(SDPA, "casts-to-float32", edits=[("    d_k = q.size(-1)",
                                              "    q, k, v = q.float(), k.float(), v.float()\n    d_k = q.size(-1)")],
            caught_by=["test_keeps_dtype_and_device"]),
    Mistake(SDPA, "softmax-without-max-subtraction",
            edits=[("weights = torch.softmax(scores, dim=-1)",
                    "weights = scores.exp() / scores.exp().sum(-1, keepdim=True)")],
            caught_by=["test_extreme_logits"]),
    Mistake(SDPA, "fully-masked-rows-not-zeroed", edits=[("weights = weights * mask", "pass")],
            caught_by=["test_fully_masked_rows_give_zeros"]),
    # Role confusions that only show when two arguments have the same shape: the suite
    # must hold tests where they do, with different contents (README, "Distinct roles").
    Mistake(SDPA, "keys-used-as-values-when-shapes-match", swaps=("k", "v"),
            edits=[("    d_k = q.size(-1)", "    v = k if k.shape == v.shape else v\n    d_k = q.size(-1)")],
            caught_by=["test_same_shapes_keep_their_roles"]),
    Mistake(SDPA, "queries-used-as-keys-when-shapes-match", swaps=("q", "k"),
            edits=[("    d_k = q.size(-1)", "    k = q if q.shape == k.shape else k\n    d_k = q.size(-1)")],
            caught_by=["test_same_shapes_keep_their_roles"]),
    Mistake(SDPA, "weights-detached", edits=[("return weights @ v, weights", "return weights.detach() @ v, weights")],
            caught_by=["test_float64_gradients"]),

    # causal_mask
    Mistake(CAUSAL, "triu-instead-of-tril", edits=[(".tril()", ".triu()")], caught_by=[GATE]),
    Mistake(CAUSAL, "diagonal-excluded", edits=[(".tril()", ".tril(diagonal=-1)")],
            caught_by=["test_causal_mask_diagonal_and_past_allowed"]),
    Mistake(CAUSAL, "returns-float", edits=[("dtype=torch.bool, ", "")], caught_by=["test_causal_mask_dtype_is_bool"]),
    Mistake(CAUSAL, "returns-int", edits=[(".tril()", ".tril().int()")], caught_by=["test_causal_mask_dtype_is_bool"]),
    Mistake(CAUSAL, "ignores-device", edits=[(", device=device", "")],
            caught_by=["test_causal_mask_honours_another_device"]),

    # padding_mask
    Mistake(PADDING, "less-or-equal-instead-of-less", edits=[("] < lengths", "] <= lengths")],
            caught_by=["test_padding_mask_boundary"]),
    Mistake(PADDING, "returns-int", edits=[("return positions[None, :] < lengths[:, None]",
                                            "return (positions[None, :] < lengths[:, None]).long()")],
            caught_by=["test_padding_mask_dtype_and_shape"]),
    Mistake(PADDING, "transposed-max_len-by-B", edits=[("positions[None, :] < lengths[:, None]",
                                                        "positions[:, None] < lengths[None, :]")],
            caught_by=[GATE]),
    Mistake(PADDING, "list-lengths-unsupported", edits=[("    lengths = torch.as_tensor(lengths)\n", "")],
            caught_by=["test_padding_mask_list_lengths"]),
    Mistake(PADDING, "ignores-device", edits=[("torch.arange(max_len, device=lengths.device)", "torch.arange(max_len)")],
            caught_by=["test_padding_mask_honours_the_device_of_lengths"]),

    # AdditiveAttention
    Mistake(ADDITIVE, "linear-layers-with-bias", edits=[("bias=False", "bias=True")], caught_by=["test_submodules"]),
    # Without tanh the query's term is the same for every key and cancels in the
    # softmax: the weights no longer depend on the query, which the gate checks.
    Mistake(ADDITIVE, "missing-tanh", edits=[("torch.tanh(", "(")], caught_by=[GATE]),
    Mistake(ADDITIVE, "softmax-over-batch", edits=[("torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=0)")],
            caught_by=[GATE]),
    Mistake(ADDITIVE, "fully-masked-row-not-zeroed", edits=[("weights = weights * mask", "pass")],
            caught_by=["test_fully_masked_row_gives_zeros"]),
    Mistake(ADDITIVE, "minus-inf-fill-gives-nan-row", edits=[("torch.finfo(scores.dtype).min", 'float("-inf")')],
            caught_by=["test_fully_masked_row_gives_zeros"]),
    Mistake(ADDITIVE, "mask-ignored", edits=[("scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)",
                                              "pass")],
            caught_by=["test_masking_equals_removing_keys"]),
    Mistake(ADDITIVE, "keys-used-as-values-when-shapes-match", swaps=("keys", "values"),
            edits=[("        context = (weights.unsqueeze(1) @ values)",
                    "        values = keys if keys.shape == values.shape else values\n"
                    "        context = (weights.unsqueeze(1) @ values)")],
            caught_by=["test_arguments_of_one_size_keep_their_roles"]),
    Mistake(ADDITIVE, "query-projected-with-W_k-when-sizes-match", swaps=("W_q", "W_k"),
            edits=[("self.W_q(query).unsqueeze(1)",
                    "(self.W_k if self.W_k.in_features == self.W_q.in_features else self.W_q)(query).unsqueeze(1)")],
            caught_by=["test_arguments_of_one_size_keep_their_roles"]),

    # SelfAttention
    Mistake(SELF, "mask-replaces-causal-mask", edits=[("mask & future", "mask")],
            caught_by=["test_causal_combined_with_mask"]),
    Mistake(SELF, "W_v-uses-d_k", edits=[("self.W_v = nn.Linear(d_model, d_v", "self.W_v = nn.Linear(d_model, d_k")],
            caught_by=["test_submodules"]),
    Mistake(SELF, "causal-ignored", edits=[("if self.causal:", "if False:")], caught_by=["test_causal_hides_the_future"]),
    Mistake(SELF, "own-attention-without-scaling", edits=[(
        "return scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x), mask)",
        "q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)\n"
        "        scores = q @ k.transpose(-2, -1)\n"
        "        if mask is not None:\n"
        "            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)\n"
        "        weights = torch.softmax(scores, dim=-1)\n"
        "        if mask is not None:\n"
        "            weights = weights * mask\n"
        "        return weights @ v, weights")],
        caught_by=["test_matches_builtin_on_projections"]),
    Mistake(SELF, "linear-layers-with-bias", edits=[("bias=False", "bias=True")], caught_by=[GATE, "test_submodules"]),
    Mistake(SELF, "combines-masks-in-place", edits=[("mask = future if mask is None else mask & future",
                                                     "if mask is None:\n                mask = future\n"
                                                     "            else:\n                mask &= future")],
            caught_by=["test_inputs_left_unchanged"]),
    Mistake(SELF, "causal-mask-applied-without-padding", edits=[("mask = future if mask is None else mask & future",
                                                                 "mask = future")],
            caught_by=["test_causal_combined_with_mask"]),
    Mistake(SELF, "queries-and-keys-projections-swapped", swaps=("W_q", "W_k"),
            edits=[("scaled_dot_product_attention(self.W_q(x), self.W_k(x),",
                    "scaled_dot_product_attention(self.W_k(x), self.W_q(x),")],
            caught_by=["test_matches_builtin_on_projections"]),
    Mistake(SELF, "values-projected-with-W_k-when-d_v-is-d_k", swaps=("W_k", "W_v"),
            edits=[("self.W_k(x), self.W_v(x), mask)",
                    "self.W_k(x), (self.W_k if self.W_k.out_features == self.W_v.out_features "
                    "else self.W_v)(x), mask)")],
            caught_by=[GATE]),
]

# --- correct alternatives ---------------------------------------------------------------------------

ADDITIVE_HEAD = '''
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w = nn.Linear(hidden_dim, 1, bias=False)
'''

SELF_HEAD = """
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k, d_v=None, causal=False):
        super().__init__()
        self.causal = causal
        self.W_q = nn.Linear(d_model, d_k, bias=False)
        self.W_k = nn.Linear(d_model, d_k, bias=False)
        self.W_v = nn.Linear(d_model, d_v or d_k, bias=False)
"""

ALTERNATIVES = [
    Alternative(SDPA, "einsum-and-hand-made-stable-softmax", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device))
    top = scores.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.exp(scores - top)
    total = e.sum(dim=-1, keepdim=True)
    weights = e / torch.where(total > 0, total, torch.ones_like(total))
    return torch.einsum("...qk,...kd->...qd", weights, v), weights
'''),
    Alternative(SDPA, "minus-inf-fill-then-nan_to_num", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(k.size(-1)))
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.matmul(weights, v), weights
'''),
    Alternative(SDPA, "scaled-q-and-big-negative-fill", '''
def scaled_dot_product_attention(q, k, v, mask=None):
    q = q / math.sqrt(q.shape[-1])
    scores = q @ k.mT
    if mask is not None:
        scores = scores.masked_fill(mask == False, -1e9)
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights.masked_fill(mask == False, 0.0)
    return weights @ v, weights
'''),
    Alternative(CAUSAL, "arange-comparison", '''
def causal_mask(L, device=None):
    i = torch.arange(L, device=device)
    return i[:, None] >= i[None, :]
'''),
    Alternative(CAUSAL, "not-strict-upper-triangle", '''
def causal_mask(L, device=None):
    return ~torch.triu(torch.ones(L, L, dtype=torch.bool, device=device), diagonal=1)
'''),
    Alternative(CAUSAL, "float-tril-compared", '''
def causal_mask(L, device=None):
    return torch.tril(torch.ones(L, L, device=device)) == 1
'''),
    Alternative(PADDING, "python-loop", '''
def padding_mask(lengths, max_len):
    if not torch.is_tensor(lengths):
        lengths = torch.tensor(lengths)
    mask = torch.zeros(len(lengths), max_len, dtype=torch.bool, device=lengths.device)
    for i, n in enumerate(lengths.tolist()):
        mask[i, :n] = True
    return mask
'''),
    Alternative(PADDING, "expand-and-where", '''
def padding_mask(lengths, max_len):
    lengths = torch.as_tensor(lengths)
    positions = torch.arange(max_len, device=lengths.device).expand(len(lengths), max_len)
    return torch.where(positions < lengths.unsqueeze(1), True, False)
'''),
    Alternative(ADDITIVE, "bmm-and-nan_to_num", ADDITIVE_HEAD + '''
    def forward(self, query, keys, values, mask=None):
        scores = self.w(torch.tanh(self.W_q(query)[:, None, :] + self.W_k(keys)))[..., 0]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = F.softmax(scores, dim=1).nan_to_num(0.0)
        return torch.bmm(weights.unsqueeze(1), values).squeeze(1), weights
'''),
    Alternative(ADDITIVE, "einsum-and-where", ADDITIVE_HEAD + '''
    def forward(self, query, keys, values, mask=None):
        hidden = torch.tanh(self.W_q(query).unsqueeze(1) + self.W_k(keys))
        scores = torch.einsum("blh,h->bl", hidden, self.w.weight[0])
        if mask is None:
            weights = torch.softmax(scores, dim=-1)
        else:
            scores = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
            weights = torch.softmax(scores, dim=-1)
            weights = torch.where(mask.any(-1, keepdim=True), weights, torch.zeros_like(weights))
        return torch.einsum("bl,bld->bd", weights, values), weights
'''),
    Alternative(ADDITIVE, "weighted-sum-and-big-negative-fill", ADDITIVE_HEAD + '''
    def forward(self, query, keys, values, mask=None):
        q = self.W_q(query).unsqueeze(1).expand(-1, keys.size(1), -1)
        scores = self.w(torch.tanh(q + self.W_k(keys))).squeeze(2)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        weights = scores.softmax(-1)
        if mask is not None:
            weights = weights.masked_fill(mask == 0, 0.0)
        return (weights.unsqueeze(-1) * values).sum(dim=1), weights
'''),
    Alternative(SELF, "all-true-mask-and-logical_and", SELF_HEAD + '''
    def forward(self, x, mask=None):
        L = x.shape[1]
        allowed = torch.ones(L, L, dtype=torch.bool, device=x.device)
        if self.causal:
            allowed = allowed.tril()
        if mask is not None:
            allowed = torch.logical_and(allowed, mask)
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        return scaled_dot_product_attention(q, k, v, allowed)
'''),
    Alternative(SELF, "where-combined-mask", '''
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k, d_v=None, causal=False):
        super().__init__()
        if d_v is None:
            d_v = d_k
        self.W_v = nn.Linear(d_model, d_v, bias=False)
        self.W_k = nn.Linear(d_model, d_k, bias=False)
        self.W_q = nn.Linear(d_model, d_k, bias=False)
        self.is_causal = causal

    def forward(self, x, mask=None):
        if self.is_causal:
            c = causal_mask(x.size(1), x.device)
            mask = c if mask is None else torch.where(c, mask, False)
        out, weights = scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x), mask=mask)
        return out, weights
'''),
]

# --- hollow answers -------------------------------------------------------------------------------------
# Each satisfies some properties trivially (masking equals removal, inputs left
# unchanged, causality, the right dtype): the components' gates keep them at zero.

HOLLOW = [
    Hollow(SDPA, "sdpa-zeros", """
def scaled_dot_product_attention(q, k, v, mask=None):
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    return out, torch.zeros(*q.shape[:-1], k.shape[-2], dtype=q.dtype, device=q.device)
"""),
    Hollow(SDPA, "sdpa-uniform-weights", """
def scaled_dot_product_attention(q, k, v, mask=None):
    w = torch.full((*q.shape[:-1], k.shape[-2]), 1.0 / k.shape[-2], dtype=q.dtype, device=q.device)
    return w @ v, w
"""),
    Hollow(SDPA, "sdpa-returns-v", """
def scaled_dot_product_attention(q, k, v, mask=None):
    w = torch.eye(q.shape[-2], k.shape[-2], dtype=q.dtype, device=q.device).expand(*q.shape[:-1], k.shape[-2])
    return v[..., :q.shape[-2], :], w
"""),
    Hollow(CAUSAL, "causal-mask-all-true", """
def causal_mask(L, device=None):
    return torch.ones(L, L, dtype=torch.bool, device=device)
"""),
    Hollow(CAUSAL, "causal-mask-identity", """
def causal_mask(L, device=None):
    return torch.eye(L, dtype=torch.bool, device=device)
"""),
    Hollow(PADDING, "padding-mask-all-true", """
def padding_mask(lengths, max_len):
    return torch.ones(len(lengths), max_len, dtype=torch.bool)
"""),
    Hollow(ADDITIVE, "additive-uniform-weights", ADDITIVE_HEAD + """
    def forward(self, query, keys, values, mask=None):
        w = torch.full(keys.shape[:2], 1.0 / keys.shape[1], dtype=values.dtype, device=values.device)
        return (w.unsqueeze(1) @ values).squeeze(1), w
"""),
    Hollow(SELF, "self-zeros", SELF_HEAD + """
    def forward(self, x, mask=None):
        out = torch.zeros(*x.shape[:-1], self.W_v.out_features, dtype=x.dtype, device=x.device)
        return out, torch.zeros(*x.shape[:-1], x.shape[-2], dtype=x.dtype, device=x.device)
"""),
    Hollow(SELF, "self-values-only", SELF_HEAD + """
    def forward(self, x, mask=None):
        L = x.shape[-2]
        return self.W_v(x), torch.eye(L, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], L)
"""),
]
