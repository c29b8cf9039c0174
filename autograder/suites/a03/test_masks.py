"""Hidden tests for causal_mask(L, device=None) and padding_mask(lengths, max_len)."""
import pytest
import torch
import torch.nn.functional as F

from autograder.student import StudentError
from autograder.suite import Feedback, assert_close, assert_tensor, expect, expect_function, gate, spec

causal = pytest.mark.component("test-causal-mask")
padding = pytest.mark.component("test-padding-mask")


def as_bool(m):
    """Values only (the dtype has its own test): a non-bool mask counts as True where it is non-zero."""
    return m if m.dtype == torch.bool else m != 0


def expect_bool(m, what):
    expect(m.dtype == torch.bool, f"{what} must be a torch.bool tensor (True = may attend), got {m.dtype}")


def tril(L):
    return torch.ones(L, L, dtype=torch.bool).tril()


def causal_of(student, L, **kwargs):
    m = student.causal_mask(L, **kwargs)
    assert_tensor(m, f"causal_mask({L})", shape=(L, L))
    return m


# --- causal_mask ----------------------------------------------------------------------

@gate("test-causal-mask")
def causal_mask_is_a_causal_pattern(student):
    """causal_mask(5) holds both values, and lets some position see an earlier one."""
    expect_function(student, "causal_mask", "(L, device=None)")
    m = as_bool(causal_of(student, 5))
    expect(m.any() and not m.all(), "causal_mask(5) should hold both True (may attend) and False (the future)")
    expect(m.tril(-1).any(), "causal_mask(5) lets no position attend to an earlier one")


@spec('Keep each function or class defined at the top level of its answer cell, with exactly the name and signature given')
@causal
@pytest.mark.weight(0.5)
def test_causal_mask_is_a_function(student):
    """causal_mask is a top-level function that returns a tensor"""
    expect_function(student, "causal_mask", "(L, device=None)")
    assert_tensor(student.causal_mask(3), "causal_mask(3)")


@spec('that is `True` on and below the diagonal')
@causal
@pytest.mark.weight(3)
def test_causal_mask_values_for_many_lengths(student):
    """causal_mask(L) is True exactly on and below the diagonal, for L from 1 to 300"""
    for L in [*range(1, 17), 31, 64, 300]:
        m = causal_of(student, L)
        expect(torch.equal(as_bool(m), tril(L)),
               f"causal_mask({L}) should be True on and below the diagonal and False above it")


@spec('that is `True` on and below the diagonal')
@causal
def test_causal_mask_single_position(student):
    """causal_mask(1) is a single True"""
    m = causal_of(student, 1)
    expect(bool(as_bool(m).all()), "causal_mask(1) should be [[True]]")


@spec('`causal_mask(L, device=None)` returns a `torch.bool` tensor of shape `(L, L)`')
@causal
def test_causal_mask_dtype_is_bool(student):
    """causal_mask returns a torch.bool tensor"""
    m = causal_of(student, 6)
    assert_tensor(m, "causal_mask(6)")
    expect_bool(m, "causal_mask(6)")


@spec('never to the future')
@causal
def test_causal_mask_no_future(student):
    """No position may attend to a later one"""
    m = as_bool(causal_of(student, 9))
    expect(not m.triu(diagonal=1).any(), "causal_mask(L)[i, j] must be False for every j > i (the future)")


@spec('position $i$ may attend to positions $j \\le i$')
@causal
def test_causal_mask_diagonal_and_past_allowed(student):
    """Every position may attend to itself and to every earlier one"""
    m = as_bool(causal_of(student, 9))
    expect(bool(m.diagonal().all()), "causal_mask(L)[i, i] must be True: a position may attend to itself")
    expect(bool(m[tril(9).tril(diagonal=-1)].all()),
           "causal_mask(L)[i, j] must be True for every j < i (the past)")


@spec('It is created on `device`')
@causal
def test_causal_mask_device(student, device):
    """causal_mask(L, device) creates the mask on that device"""
    m = causal_of(student, 5, device=device)
    assert_tensor(m, "causal_mask(5, device)", device=device)
    expect_bool(m, "causal_mask(5, device)")
    expect(torch.equal(m.cpu(), tril(5)), "causal_mask(5, device) has wrong values")


@spec('a string such as `"cuda"` or a `torch.device`; CPU when `None`')
@causal
def test_causal_mask_default_device_and_torch_device(student):
    """device=None gives a CPU mask, and a torch.device object works too"""
    assert_tensor(causal_of(student, 4), "causal_mask(4)", device="cpu")
    m = causal_of(student, 4, device=torch.device("cpu"))
    assert_tensor(m, "causal_mask(4, device=torch.device('cpu'))", device="cpu")
    expect_bool(m, "causal_mask(4, device=torch.device('cpu'))")
    expect(torch.equal(m, tril(4)), "causal_mask(4, device=torch.device('cpu')) has wrong values")


@spec('It is created on `device`')
@causal
def test_causal_mask_honours_another_device(student):
    """The device argument is used, not ignored (checked with PyTorch's 'meta' device)"""
    m = student.causal_mask(4, device="meta")
    assert_tensor(m, "causal_mask(4, device='meta')", shape=(4, 4))
    expect_bool(m, "causal_mask(4, device='meta')")
    expect(m.device.type == "meta", "causal_mask(L, device) must create the mask on `device` "
                                    "(pass device=device when you create the tensor), "
                                    f"but with device='meta' it is on {m.device.type}")


@spec('position $i$ may attend to positions $j \\le i$, never to the future')
@causal
def test_causal_mask_matches_builtin_causal_attention(student):
    """As an attention mask, causal_mask(L) gives PyTorch's causal attention"""
    q, k, v = torch.randn(2, 7, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 3)
    m = causal_of(student, 7)
    expect(m.dtype == torch.bool, f"causal_mask must return a bool tensor, got {m.dtype}")
    assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                 F.scaled_dot_product_attention(q, k, v, is_causal=True),
                 "attention with causal_mask(7) as its mask (compared with PyTorch's is_causal=True)")


# --- padding_mask ---------------------------------------------------------------------

@gate("test-padding-mask")
def padding_mask_tells_tokens_from_padding(student):
    """padding_mask for two lengths holds both values, and different rows for them."""
    expect_function(student, "padding_mask", "(lengths, max_len)")
    m = student.padding_mask(torch.tensor([1, 3]), 4)
    assert_tensor(m, "padding_mask(torch.tensor([1, 3]), 4)", shape=(2, 4))
    m = as_bool(m)
    expect(m.any() and not m.all(), "padding_mask(torch.tensor([1, 3]), 4) should hold both True (a real token) "
                                    "and False (padding)")
    expect(not torch.equal(m[0], m[1]), "padding_mask gives the same row to sequences of lengths 1 and 3")


def expected_padding(lengths, max_len):
    return torch.arange(max_len)[None, :] < torch.as_tensor(lengths)[:, None]


def padding_of(student, lengths, max_len):
    m = student.padding_mask(lengths, max_len)
    assert_tensor(m, f"padding_mask(lengths, {max_len})", shape=(len(lengths), max_len))
    return m


@spec('Keep each function or class defined at the top level of its answer cell, with exactly the name and signature given')
@padding
@pytest.mark.weight(0.5)
def test_padding_mask_is_a_function(student):
    """padding_mask is a top-level function that returns a tensor"""
    expect_function(student, "padding_mask", "(lengths, max_len)")
    assert_tensor(student.padding_mask(torch.tensor([1, 2]), 3), "padding_mask(lengths, 3)")


@spec('`True` at real tokens (positions `< length`) and `False` at padding')
@padding
@pytest.mark.weight(3)
def test_padding_mask_values(student):
    """padding_mask is True exactly at positions < length, for random batches"""
    gen = torch.Generator().manual_seed(5)
    for _ in range(10):
        B, max_len = (int(s) for s in torch.randint(1, 12, (2,), generator=gen))
        lengths = torch.randint(0, max_len + 1, (B,), generator=gen)
        m = padding_of(student, lengths, max_len)
        expect(torch.equal(as_bool(m), expected_padding(lengths, max_len)),
               f"padding_mask(lengths, {max_len}) with {B} lengths has wrong values: row b should be True "
               "at positions 0 .. lengths[b] - 1 and False after")


@spec('or a list of ints')
@padding
def test_padding_mask_list_lengths(student):
    """A Python list of lengths works like a tensor"""
    lengths = [3, 1, 5, 2]
    m = padding_of(student, lengths, 6)
    expect(torch.equal(as_bool(m), expected_padding(lengths, 6)),
           "padding_mask([3, 1, 5, 2], 6) has wrong values")


@spec('each length between 0 and `max_len`')
@padding
def test_padding_mask_empty_and_full_sequences(student):
    """Length 0 gives an all-False row, length == max_len an all-True row"""
    m = as_bool(padding_of(student, torch.tensor([0, 5, 2]), 5))
    expect(not m[0].any(), "a sequence of length 0 has no real token: its row must be all False")
    expect(bool(m[1].all()), "a sequence of length max_len has no padding: its row must be all True")


@spec('`True` at real tokens (positions `< length`) and `False` at padding')
@padding
def test_padding_mask_boundary(student):
    """Position length - 1 is a real token and position length is padding"""
    lengths = torch.tensor([2, 4, 1])
    m = as_bool(padding_of(student, lengths, 6))
    for b, n in enumerate(lengths.tolist()):
        expect(bool(m[b, n - 1]), "the last real token (position length - 1) must be True")
        expect(not m[b, n], "the first padding position (position length) must be False: use <, not <=")


@spec('returns a `torch.bool` tensor of shape `(B, max_len)`')
@padding
def test_padding_mask_dtype_and_shape(student):
    """padding_mask returns a torch.bool tensor of shape (B, max_len)"""
    m = student.padding_mask(torch.tensor([2, 3, 1]), 7)
    assert_tensor(m, "padding_mask(lengths of 3 sequences, 7)", shape=(3, 7))
    expect_bool(m, "padding_mask(lengths of 3 sequences, 7)")
    m1 = student.padding_mask(torch.tensor([4]), 9)
    assert_tensor(m1, "padding_mask(lengths of 1 sequence, 9)", shape=(1, 9))
    expect_bool(m1, "padding_mask(lengths of 1 sequence, 9)")


@spec('A tensor `lengths` keeps its device')
@padding
def test_padding_mask_keeps_device(student, device):
    """A tensor of lengths keeps its device"""
    lengths = torch.tensor([1, 4, 2], device=device)
    m = student.padding_mask(lengths, 5)
    assert_tensor(m, "padding_mask(lengths, 5)", shape=(3, 5), device=device)
    expect_bool(m, "padding_mask(lengths, 5)")
    expect(torch.equal(m.cpu(), expected_padding(lengths.cpu(), 5)), "padding_mask(lengths, 5) has wrong values")


@spec('A tensor `lengths` keeps its device: the mask is created on it')
@padding
def test_padding_mask_honours_the_device_of_lengths(student):
    """The mask is created on the device of a tensor of lengths (checked with PyTorch's 'meta' device)"""
    lengths = torch.tensor([1, 4, 2], device="meta")
    try:
        m = student.padding_mask(lengths, 5)
    except StudentError as err:
        # Reading the lengths' values (a loop over lengths.tolist()) is allowed: it works on
        # every real device, and only the meta device, which holds no data, refuses it.
        if err.info.get("type") == "NotImplementedError" and "meta tensor" in str(err.info.get("message")):
            return
        raise Feedback("padding_mask(lengths, max_len) must create the mask on the device of lengths "
                       "(torch.arange(max_len, device=lengths.device)): with lengths on PyTorch's 'meta' "
                       f"device it raised {err.info.get('type', 'an error')}") from None
    assert_tensor(m, "padding_mask(lengths on 'meta', 5)", shape=(3, 5))
    expect(m.device.type == "meta", "padding_mask(lengths, max_len) must create the mask on the device of "
                                    f"lengths, but with lengths on 'meta' it is on {m.device.type}")


@spec('a 1-D integer tensor of any integer dtype')
@padding
def test_padding_mask_integer_dtypes(student):
    """int32 and int64 tensors of lengths both work"""
    for dtype in (torch.int32, torch.int64):
        lengths = torch.tensor([3, 0, 2], dtype=dtype)
        m = padding_of(student, lengths, 4)
        expect(torch.equal(as_bool(m), expected_padding(lengths, 4)),
               f"padding_mask with {dtype} lengths has wrong values")


@spec('`lengths` is not modified')
@padding
def test_padding_mask_leaves_lengths_unchanged(student):
    """The lengths tensor is not modified in place"""
    lengths = torch.tensor([3, 1, 4])
    result, after = student.padding_mask.with_inputs(lengths, 5)
    assert_tensor(result, "padding_mask(lengths, 5)", shape=(3, 5))
    expect(isinstance(after[0], torch.Tensor) and after[0].dtype == lengths.dtype and torch.equal(after[0], lengths),
           "padding_mask changed its lengths tensor in place")


@spec('To use a padding mask on keys in attention, add a query dimension')
@padding
def test_padding_mask_as_key_mask(student):
    """Used as padding_mask(lengths, L)[:, None, :], padded keys are ignored by attention"""
    lengths = torch.tensor([5, 2, 7])
    q, k, v = torch.randn(3, 7, 8), torch.randn(3, 7, 8), torch.randn(3, 7, 4)
    m = padding_of(student, lengths, 7)
    expect(m.dtype == torch.bool, f"padding_mask must return a bool tensor, got {m.dtype}")
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=m[:, None, :])
    for b, n in enumerate(lengths.tolist()):
        alone = F.scaled_dot_product_attention(q[b], k[b, :n], v[b, :n])
        assert_close(out[b], alone, "attention with padding_mask as key mask (compared with the padding removed)")
