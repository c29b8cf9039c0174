"""The hidden a03 suite grades what it should: full marks for the solution and for
other correct implementations, zero for the untouched release, and lost points
for common mistakes, each confined to the component whose answer is wrong.

Every notebook here is graded in the sandbox (`in_process=False`): the zygote is
shared by the whole session, so a notebook costs about as much as in-process
grading, and the suite's gradient tests need the sandbox (in-process grading
cannot return the outputs of `vjp`; see `test_in_process_vjp` below).
"""
import importlib.util
import json
import re

import pytest

from autograder import extract
from autograder.config import suite_dir
from autograder.judge import grade
from autograder.suite import gates_in
from autograder.paths import known_assignments
from conftest import ROOT
from submissions import answer_source, submission

pytestmark = pytest.mark.slow

COMPONENTS = ["test-sdpa", "test-causal-mask", "test-padding-mask", "test-additive", "test-self"]
ANSWER = {"test-sdpa": "answer-sdpa", "test-causal-mask": "answer-causal-mask",
          "test-padding-mask": "answer-padding-mask", "test-additive": "answer-additive",
          "test-self": "answer-self"}
# SelfAttention calls the student's own scaled_dot_product_attention and causal_mask:
# a mistake in those may legitimately cost SelfAttention points too.
DEPENDS_ON = {"test-self": {"test-sdpa", "test-causal-mask"}}


def mutate(grade_id: str, *pairs: str) -> str:
    """The reference answer with each `old` replaced by `new` (old must be there)."""
    source = answer_source(grade_id)
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert old in source, f"{old!r} is not in the reference answer {grade_id}: update this mistake"
        source = source.replace(old, new)
    return source


def scores(report: dict) -> dict:
    return {c["grade_id"]: (c["score"], c["max_score"]) for c in report["components"]}


def failures(report: dict, grade_id: str) -> list[str]:
    comp = next(c for c in report["components"] if c["grade_id"] == grade_id)
    return [t["message"] for t in comp["tests"] if t["outcome"] not in ("passed", "not_graded")]


def grade_with(tmp_path, grade_id: str, source: str) -> dict:
    nb = submission(tmp_path, replace={ANSWER[grade_id]: source})
    return grade(nb, "a03", device="cpu", in_process=False)


# --- common mistakes --------------------------------------------------------------------

SDPA_MISTAKES = {
    "no-1-over-sqrt-dk-scaling": mutate("answer-sdpa", " / math.sqrt(d_k)", ""),
    "scaled-by-dk-not-sqrt-dk": mutate("answer-sdpa", "/ math.sqrt(d_k)", "/ d_k"),
    "softmax-over-queries": mutate("answer-sdpa", "torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=-2)"),
    "mask-polarity-inverted": mutate("answer-sdpa", "masked_fill(~mask,", "masked_fill(mask,",
                                     "weights * mask", "weights * ~mask"),
    "minus-inf-fill-gives-nan-rows": mutate("answer-sdpa", "torch.finfo(scores.dtype).min", 'float("-inf")'),
    "k.T-breaks-batch-dims": mutate("answer-sdpa", "k.transpose(-2, -1)", "k.T"),
    "divides-q-in-place": mutate("answer-sdpa", "    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)",
                                 "    q /= math.sqrt(d_k)\n    scores = q @ k.transpose(-2, -1)"),
    "mask-inverted-in-place": mutate("answer-sdpa",
                                     "scores.masked_fill(~mask,", "scores.masked_fill(mask.logical_not_(),",
                                     "weights * mask", "weights * mask.logical_not()"),
    "casts-to-float32": mutate("answer-sdpa", "    d_k = q.size(-1)", "    q, k, v = q.float(), k.float(), v.float()\n"
                                                                  "    d_k = q.size(-1)"),
    "softmax-without-max-subtraction": mutate("answer-sdpa", "weights = torch.softmax(scores, dim=-1)",
                                              "weights = scores.exp() / scores.exp().sum(-1, keepdim=True)"),
    "fully-masked-rows-not-zeroed": mutate("answer-sdpa", "weights = weights * mask", "pass"),
}

CAUSAL_MISTAKES = {
    "triu-instead-of-tril": mutate("answer-causal-mask", ".tril()", ".triu()"),
    "diagonal-excluded": mutate("answer-causal-mask", ".tril()", ".tril(diagonal=-1)"),
    "returns-float": mutate("answer-causal-mask", "dtype=torch.bool, ", ""),
    "returns-int": mutate("answer-causal-mask", ".tril()", ".tril().int()"),
    "ignores-device": mutate("answer-causal-mask", ", device=device", ""),
}

PADDING_MISTAKES = {
    "less-or-equal-instead-of-less": mutate("answer-padding-mask", "] < lengths", "] <= lengths"),
    "returns-int": mutate("answer-padding-mask", "return positions[None, :] < lengths[:, None]",
                          "return (positions[None, :] < lengths[:, None]).long()"),
    "transposed-max_len-by-B": mutate("answer-padding-mask", "positions[None, :] < lengths[:, None]",
                                      "positions[:, None] < lengths[None, :]"),
    "list-lengths-unsupported": mutate("answer-padding-mask", "    lengths = torch.as_tensor(lengths)\n", ""),
}

ADDITIVE_MISTAKES = {
    "linear-layers-with-bias": mutate("answer-additive", "bias=False", "bias=True"),
    "missing-tanh": mutate("answer-additive", "torch.tanh(", "("),
    "softmax-over-batch": mutate("answer-additive", "torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=0)"),
    "fully-masked-row-not-zeroed": mutate("answer-additive", "weights = weights * mask", "pass"),
    "minus-inf-fill-gives-nan-row": mutate("answer-additive", "torch.finfo(scores.dtype).min", 'float("-inf")'),
    "mask-ignored": mutate("answer-additive", "scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)",
                           "pass"),
}

SELF_MISTAKES = {
    "mask-replaces-causal-mask": mutate("answer-self", "mask & future", "mask"),
    "W_v-uses-d_k": mutate("answer-self", "self.W_v = nn.Linear(d_model, d_v", "self.W_v = nn.Linear(d_model, d_k"),
    "causal-ignored": mutate("answer-self", "if self.causal:", "if False:"),
    "own-attention-without-scaling": mutate(
        "answer-self",
        "return scaled_dot_product_attention(self.W_q(x), self.W_k(x), self.W_v(x), mask)",
        "q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)\n"
        "        scores = q @ k.transpose(-2, -1)\n"
        "        if mask is not None:\n"
        "            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)\n"
        "        weights = torch.softmax(scores, dim=-1)\n"
        "        if mask is not None:\n"
        "            weights = weights * mask\n"
        "        return weights @ v, weights"),
    "linear-layers-with-bias": mutate("answer-self", "bias=False", "bias=True"),
    "combines-masks-in-place": mutate("answer-self", "mask = future if mask is None else mask & future",
                                      "if mask is None:\n                mask = future\n"
                                      "            else:\n                mask &= future"),
    "causal-mask-applied-without-padding": mutate("answer-self", "mask = future if mask is None else mask & future",
                                                  "mask = future"),
}

MISTAKES = [pytest.param(gid, source, id=f"{gid.removeprefix('test-')}-{name}")
            for gid, table in [("test-sdpa", SDPA_MISTAKES), ("test-causal-mask", CAUSAL_MISTAKES),
                               ("test-padding-mask", PADDING_MISTAKES), ("test-additive", ADDITIVE_MISTAKES),
                               ("test-self", SELF_MISTAKES)]
            for name, source in table.items()]


@pytest.mark.parametrize("grade_id, source", MISTAKES)
def test_mistake_loses_points_only_where_it_is(tmp_path, grade_id, source):
    report = grade_with(tmp_path, grade_id, source)
    got = scores(report)
    score, max_score = got[grade_id]
    assert score < max_score, f"the mistake went unnoticed: {report}"
    for other in COMPONENTS:
        if other == grade_id or grade_id in DEPENDS_ON.get(other, ()):
            continue
        assert got[other][0] == got[other][1], (other, failures(report, other))


# --- other correct implementations --------------------------------------------------------

SDPA_ALTERNATIVES = {
    "einsum-and-hand-made-stable-softmax": '''
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
''',
    "minus-inf-fill-then-nan_to_num": '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(k.size(-1)))
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.matmul(weights, v), weights
''',
    "scaled-q-and-big-negative-fill": '''
def scaled_dot_product_attention(q, k, v, mask=None):
    q = q / math.sqrt(q.shape[-1])
    scores = q @ k.mT
    if mask is not None:
        scores = scores.masked_fill(mask == False, -1e9)
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights.masked_fill(mask == False, 0.0)
    return weights @ v, weights
''',
}

CAUSAL_ALTERNATIVES = {
    "arange-comparison": '''
def causal_mask(L, device=None):
    i = torch.arange(L, device=device)
    return i[:, None] >= i[None, :]
''',
    "not-strict-upper-triangle": '''
def causal_mask(L, device=None):
    return ~torch.triu(torch.ones(L, L, dtype=torch.bool, device=device), diagonal=1)
''',
    "float-tril-compared": '''
def causal_mask(L, device=None):
    return torch.tril(torch.ones(L, L, device=device)) == 1
''',
}

PADDING_ALTERNATIVES = {
    "python-loop": '''
def padding_mask(lengths, max_len):
    if not torch.is_tensor(lengths):
        lengths = torch.tensor(lengths)
    mask = torch.zeros(len(lengths), max_len, dtype=torch.bool, device=lengths.device)
    for i, n in enumerate(lengths.tolist()):
        mask[i, :n] = True
    return mask
''',
    "expand-and-where": '''
def padding_mask(lengths, max_len):
    lengths = torch.as_tensor(lengths)
    positions = torch.arange(max_len, device=lengths.device).expand(len(lengths), max_len)
    return torch.where(positions < lengths.unsqueeze(1), True, False)
''',
}

ADDITIVE_HEAD = '''
class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)
'''

ADDITIVE_ALTERNATIVES = {
    "bmm-and-nan_to_num": ADDITIVE_HEAD + '''
    def forward(self, query, keys, values, mask=None):
        scores = self.v(torch.tanh(self.W_q(query)[:, None, :] + self.W_k(keys)))[..., 0]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = F.softmax(scores, dim=1).nan_to_num(0.0)
        return torch.bmm(weights.unsqueeze(1), values).squeeze(1), weights
''',
    "einsum-and-where": ADDITIVE_HEAD + '''
    def forward(self, query, keys, values, mask=None):
        hidden = torch.tanh(self.W_q(query).unsqueeze(1) + self.W_k(keys))
        scores = torch.einsum("blh,h->bl", hidden, self.v.weight[0])
        if mask is None:
            weights = torch.softmax(scores, dim=-1)
        else:
            scores = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
            weights = torch.softmax(scores, dim=-1)
            weights = torch.where(mask.any(-1, keepdim=True), weights, torch.zeros_like(weights))
        return torch.einsum("bl,bld->bd", weights, values), weights
''',
    "weighted-sum-and-big-negative-fill": ADDITIVE_HEAD + '''
    def forward(self, query, keys, values, mask=None):
        q = self.W_q(query).unsqueeze(1).expand(-1, keys.size(1), -1)
        scores = self.v(torch.tanh(q + self.W_k(keys))).squeeze(2)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        weights = scores.softmax(-1)
        if mask is not None:
            weights = weights.masked_fill(mask == 0, 0.0)
        return (weights.unsqueeze(-1) * values).sum(dim=1), weights
''',
}

SELF_HEAD = """
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k, d_v=None, causal=False):
        super().__init__()
        self.causal = causal
        self.W_q = nn.Linear(d_model, d_k, bias=False)
        self.W_k = nn.Linear(d_model, d_k, bias=False)
        self.W_v = nn.Linear(d_model, d_v or d_k, bias=False)
"""

SELF_ALTERNATIVES = {
    "all-true-mask-and-logical_and": SELF_HEAD + '''
    def forward(self, x, mask=None):
        L = x.shape[1]
        allowed = torch.ones(L, L, dtype=torch.bool, device=x.device)
        if self.causal:
            allowed = allowed.tril()
        if mask is not None:
            allowed = torch.logical_and(allowed, mask)
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        return scaled_dot_product_attention(q, k, v, allowed)
''',
    "where-combined-mask": '''
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
''',
}

ALTERNATIVES = [pytest.param(gid, source, id=f"{gid.removeprefix('test-')}-{name}")
                for gid, table in [("test-sdpa", SDPA_ALTERNATIVES), ("test-causal-mask", CAUSAL_ALTERNATIVES),
                                   ("test-padding-mask", PADDING_ALTERNATIVES),
                                   ("test-additive", ADDITIVE_ALTERNATIVES), ("test-self", SELF_ALTERNATIVES)]
                for name, source in table.items()]


@pytest.mark.parametrize("grade_id, source", ALTERNATIVES)
def test_alternative_correct_answer_scores_full_marks(tmp_path, grade_id, source):
    report = grade_with(tmp_path, grade_id, source)
    assert not report["errors"] or all("need a GPU" in e for e in report["errors"]), report["errors"]
    for gid in COMPONENTS:
        assert scores(report)[gid][0] == scores(report)[gid][1], (gid, failures(report, gid))
    assert report["score"] == report["max_score"] == 10.0


# --- answers that only look like answers ----------------------------------------------------
# Each satisfies some properties trivially (masking equals removal, inputs left
# unchanged, causality, the right dtype): the components' gates keep them at zero.

HOLLOW = {
    "sdpa-zeros": ("test-sdpa", """
def scaled_dot_product_attention(q, k, v, mask=None):
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    return out, torch.zeros(*q.shape[:-1], k.shape[-2], dtype=q.dtype, device=q.device)
"""),
    "sdpa-uniform-weights": ("test-sdpa", """
def scaled_dot_product_attention(q, k, v, mask=None):
    w = torch.full((*q.shape[:-1], k.shape[-2]), 1.0 / k.shape[-2], dtype=q.dtype, device=q.device)
    return w @ v, w
"""),
    "sdpa-returns-v": ("test-sdpa", """
def scaled_dot_product_attention(q, k, v, mask=None):
    w = torch.eye(q.shape[-2], k.shape[-2], dtype=q.dtype, device=q.device).expand(*q.shape[:-1], k.shape[-2])
    return v[..., :q.shape[-2], :], w
"""),
    "causal-mask-all-true": ("test-causal-mask", """
def causal_mask(L, device=None):
    return torch.ones(L, L, dtype=torch.bool, device=device)
"""),
    "causal-mask-identity": ("test-causal-mask", """
def causal_mask(L, device=None):
    return torch.eye(L, dtype=torch.bool, device=device)
"""),
    "padding-mask-all-true": ("test-padding-mask", """
def padding_mask(lengths, max_len):
    return torch.ones(len(lengths), max_len, dtype=torch.bool)
"""),
    "additive-uniform-weights": ("test-additive", ADDITIVE_HEAD + """
    def forward(self, query, keys, values, mask=None):
        w = torch.full(keys.shape[:2], 1.0 / keys.shape[1], dtype=values.dtype, device=values.device)
        return (w.unsqueeze(1) @ values).squeeze(1), w
"""),
    "self-zeros": ("test-self", SELF_HEAD + """
    def forward(self, x, mask=None):
        out = torch.zeros(*x.shape[:-1], self.W_v.out_features, dtype=x.dtype, device=x.device)
        return out, torch.zeros(*x.shape[:-1], x.shape[-2], dtype=x.dtype, device=x.device)
"""),
    "self-values-only": ("test-self", SELF_HEAD + """
    def forward(self, x, mask=None):
        L = x.shape[-2]
        return self.W_v(x), torch.eye(L, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], L)
"""),
}


@pytest.mark.parametrize("name", HOLLOW)
def test_hollow_answer_scores_zero_on_its_component(tmp_path, name):
    grade_id, source = HOLLOW[name]
    report = grade_with(tmp_path, grade_id, source)
    got = scores(report)
    assert got[grade_id][0] == 0.0, [t for c in report["components"] if c["grade_id"] == grade_id
                                     for t in c["tests"] if t["outcome"] == "passed"]
    messages = failures(report, grade_id)
    assert "not credited until this basic check passes" in messages[0], messages[0]
    assert all("not credited" in m for m in messages[1:]), messages
    for other in COMPONENTS:
        if other != grade_id and grade_id not in DEPENDS_ON.get(other, ()):
            assert got[other][0] == got[other][1], (other, failures(report, other))


# --- the whole notebook -------------------------------------------------------------------

def test_solution_scores_full_marks(tmp_path):
    report = grade(submission(tmp_path), "a03", device="cpu", in_process=False)
    assert report["score"] == report["max_score"] == 10.0, [failures(report, g) for g in COMPONENTS]
    for comp in report["components"]:
        graded = [t for t in comp["tests"] if t["outcome"] != "not_graded"]
        assert 8 <= len(graded), (comp["grade_id"], len(graded))


def test_untouched_release_scores_zero(tmp_path):
    report = grade(submission(tmp_path, base="release"), "a03", device="cpu", in_process=False)
    assert report["score"] == 0.0, {c["grade_id"]: c["score"] for c in report["components"]}
    assert all(t["outcome"] in ("error", "failed", "not_graded") for c in report["components"] for t in c["tests"])


def test_grading_is_deterministic(tmp_path):
    mistakes = {"answer-sdpa": SDPA_MISTAKES["no-1-over-sqrt-dk-scaling"],
                "answer-additive": ADDITIVE_MISTAKES["missing-tanh"]}
    nb = submission(tmp_path, replace=mistakes)
    first = grade(nb, "a03", device="cpu", in_process=False)
    second = grade(nb, "a03", device="cpu", in_process=False)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert 0 < first["score"] < 10


def test_messages_hold_no_reference_values(tmp_path):
    """Failure messages say what is wrong and by how much, never what the answer is."""
    mistakes = {ANSWER[g]: table[name] for g, table, name in [
        ("test-sdpa", SDPA_MISTAKES, "softmax-over-queries"),
        ("test-causal-mask", CAUSAL_MISTAKES, "triu-instead-of-tril"),
        ("test-padding-mask", PADDING_MISTAKES, "less-or-equal-instead-of-less"),
        ("test-additive", ADDITIVE_MISTAKES, "missing-tanh")]}
    report = grade(submission(tmp_path, replace=mistakes), "a03", device="cpu", in_process=False)
    messages = [t["message"] for c in report["components"] for t in c["tests"] if t["outcome"] == "failed"]
    assert len(messages) >= 10
    for message in messages:
        assert "tensor(" not in message and "[[" not in message, message
        # Numbers in messages are sizes from the specification, or the size of an error.
        rest = re.sub(r"largest absolute error [^,]+, tolerance [^)]+", "", message)
        assert not re.search(r"\d\.\d", rest), message
        assert "check failed" not in message, f"a plain assert in the suite: {message}"


@pytest.mark.parametrize("assignment", known_assignments())
def test_every_component_has_a_gate(assignment):
    """Without a gate, a hollow answer earns points from properties it meets trivially."""
    components = {c.grade_id for c in extract.components_of(
        extract.read_notebook(extract.release_notebook(assignment, ROOT)))}
    gated = set()
    for path in sorted(suite_dir(assignment).glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"suite_{assignment}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        gated |= set(gates_in(module))
    assert components and gated == components, f"components without a gate: {sorted(components - gated)}"
