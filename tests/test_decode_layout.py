"""The decode layout (nn/decode_layout.py) changes how weights are multiplied and where they live, never what they are.

Fused projections are views into one block: training, ``load_state_dict`` and dtype moves must keep working and
must never let the block go stale.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch_threads import single_thread

from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.nn import decode_layout, prepare_for_decoding
from llms_from_scratch.nn.decode_layout import DecodeLinear, decode_linear, split_linear

CFG = get_config("qwen3-0.6b", vocab_size=128, emb_dim=32, n_layers=2, hidden_dim=48, n_heads=4, n_kv_groups=2,
                 head_dim=8, context_length=64)
IDS = torch.tensor([[3, 14, 15, 92, 65, 35, 89, 79]])


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


def _models():
    torch.manual_seed(0)
    plain = build_model(CFG).eval()
    return plain, prepare_for_decoding(copy.deepcopy(plain), batch_size=1)


def test_values_stay_and_only_the_layout_changes():
    plain, fast = _models()
    att = fast.trf_blocks[0].att
    assert att.fused_qkv is not None and fast.trf_blocks[0].ff.fused_gate_up is not None
    assert att.W_query.weight.shape == plain.trf_blocks[0].att.W_query.weight.shape
    assert att.W_query.weight.data_ptr() == att.fused_qkv.weight.data_ptr()  # a view into the fused block
    assert type(fast.out_head) is DecodeLinear and fast.out_head.weight.is_contiguous()  # same object, new forward
    for (name, a), (_, b) in zip(plain.state_dict().items(), fast.state_dict().items()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        torch.testing.assert_close(fast(IDS), plain(IDS), atol=1e-6, rtol=1e-6)
        for rows in (1, 2, 4):  # few rows: the split products run
            torch.testing.assert_close(fast(IDS[:, :rows]), plain(IDS[:, :rows]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("out_features", [1, 3, 8, 130])  # fewer rows than parts, even, and a remainder of 2
@pytest.mark.parametrize("bias", [True, False])
# leading dims of x: 1 to 4 rows take the split product, 6 and 40 rows oneDNN
@pytest.mark.parametrize("shape", [(1, 1), (2, 1), (1, 3), (4,), (2, 3), (5, 8)])
def test_decode_linear_equals_linear(out_features, bias, shape):
    torch.manual_seed(0)
    layer = torch.nn.Linear(24, out_features, bias=bias)
    x = torch.randn(*shape, 24)
    with torch.no_grad():
        torch.testing.assert_close(decode_linear(x, layer.weight, layer.bias), layer(x), atol=1e-5, rtol=1e-5)
        if len(shape) == 2 and shape[0] * shape[1] <= 4:
            torch.testing.assert_close(split_linear(x.reshape(-1, 24), layer.weight), x.reshape(-1, 24) @ layer.weight.T,
                                       atol=1e-5, rtol=1e-5)


def test_the_onednn_kernel_is_found_where_pytorch_has_one():
    """A PyTorch without the private oneDNN op would silently lose the batch speed-up: fail loudly instead."""
    if torch.backends.mkldnn.is_available():
        assert decode_layout._ONEDNN_LINEAR is not None


def test_other_dtypes_and_devices_take_f_linear():
    layer = torch.nn.Linear(24, 8).to(torch.bfloat16)
    x = torch.randn(1, 24, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(decode_linear(x, layer.weight, layer.bias), torch.nn.functional.linear(x, layer.weight, layer.bias))
        # not a CPU tensor (the oneDNN op would refuse it): F.linear, which on the meta device gives just the shape
        meta = torch.nn.Linear(24, 8, device="meta")
        assert decode_linear(torch.empty(6, 24, device="meta"), meta.weight, meta.bias).shape == (6, 8)


def test_batches_keep_separate_projections():
    plain, fast = _models()
    block = fast.trf_blocks[0].att.fused_qkv.weight
    prepare_for_decoding(fast, batch_size=8)
    assert fast.trf_blocks[0].att.fused_qkv is None
    assert type(fast.out_head) is DecodeLinear
    # every layer owns its weight again, so the fused block can be freed
    assert fast.trf_blocks[0].att.W_query.weight.untyped_storage().data_ptr() != block.untyped_storage().data_ptr()
    assert all(p.is_contiguous() for p in fast.parameters())
    for (name, a), (_, b) in zip(plain.state_dict().items(), fast.state_dict().items()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        batch = IDS.repeat(8, 1)
        torch.testing.assert_close(fast(batch), plain(batch), atol=1e-5, rtol=1e-5)


def test_training_updates_the_fused_block():
    """With autograd on, the separate layers run (so gradients reach the parameters); the optimizer then writes
    into the views, and the fused product sees the new weights."""
    _, fast = _models()
    fast.train()
    opt = torch.optim.SGD(fast.parameters(), lr=0.5)
    logits = fast(IDS)
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], IDS[0, 1:])
    loss.backward()
    assert fast.trf_blocks[0].att.W_key.weight.grad is not None
    opt.step()
    fast.eval()
    att = fast.trf_blocks[0].att
    assert att.fused_qkv.usable() is False  # grad mode is on here
    with torch.no_grad():
        assert att.fused_qkv.usable()
        x = torch.randn(1, 3, CFG.emb_dim)
        q, k, v = att.fused_qkv(x)
        torch.testing.assert_close(k, torch.nn.functional.linear(x, att.W_key.weight), atol=1e-6, rtol=1e-6)


def test_load_state_dict_keeps_the_block_in_sync():
    plain, fast = _models()
    other = build_model(CFG).eval()  # different random weights
    fast.load_state_dict(other.state_dict())
    assert fast.trf_blocks[1].ff.fused_gate_up.usable() or torch.is_grad_enabled()
    with torch.no_grad():
        torch.testing.assert_close(fast(IDS), other(IDS), atol=1e-6, rtol=1e-6)


def test_a_dtype_move_falls_back_to_the_separate_layers():
    plain, fast = _models()
    fast.to(torch.float64)  # new storage for every parameter: the fused block is stale now
    with torch.no_grad():
        assert not fast.trf_blocks[0].att.fused_qkv.usable()
        torch.testing.assert_close(fast(IDS), plain.to(torch.float64)(IDS), atol=1e-9, rtol=1e-9)


def test_mixed_biases_are_refused():
    from torch import nn

    from llms_from_scratch.nn import FusedProjection

    with pytest.raises(ValueError, match="all of them with a bias or all without"):
        FusedProjection([nn.Linear(4, 4, bias=True), nn.Linear(4, 4, bias=False)])
