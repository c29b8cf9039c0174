"""Hidden tests for scaled_dot_product_attention(q, k, v, mask=None)."""
import math

import pytest
import torch
import torch.nn.functional as F

from autograder.suite import assert_close, assert_tensor, expect

pytestmark = pytest.mark.component("test-sdpa")


def builtin(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("batch", [(), (3,), (2, 3), (2, 1, 4)])
def test_matches_builtin_for_any_batch_dims(student, batch, device):
    """Output and weights match PyTorch for 0 to 3 batch dimensions"""
    q = torch.randn(*batch, 5, 8, device=device)
    k = torch.randn(*batch, 7, 8, device=device)
    v = torch.randn(*batch, 7, 6, device=device)
    out, w = student.scaled_dot_product_attention(q, k, v)
    assert_close(out, builtin(q, k, v), "the output", atol=1e-5)
    expected_w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
    assert_close(w, expected_w, "the weights", atol=1e-5)
