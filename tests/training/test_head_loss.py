"""``nn.head_loss`` and ``training.fused_loss``: the output head fused into the cross-entropy gives chapter 5's
loss and gradients, and leaves the model as it was."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.ch05 import calc_loss_batch, calc_loss_loader
from llms_from_scratch.nn.head_loss import chunk_rows_for, head_cross_entropy
from llms_from_scratch.training.fused_loss import calc_loss_batch_fused, gpt_hidden_states, lm_loss

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": True}


def _grads(loss, tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ignored", [False, True])
@pytest.mark.parametrize("chunk_rows", [1, 8, 37, 100])  # one row, uneven chunks with a remainder, one chunk
def test_loss_and_gradients_equal_cross_entropy_in_float64(bias, ignored, chunk_rows):
    g = torch.Generator().manual_seed(chunk_rows)
    hidden = torch.randn(37, 16, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(101, 16, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(101, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    targets = torch.randint(0, 101, (37,), generator=g)
    if ignored:
        targets[::3] = -100  # chapter 7 masks padding this way
    ref = F.cross_entropy(F.linear(hidden, weight, b), targets)
    out = head_cross_entropy(hidden, weight, b, targets, chunk_rows=chunk_rows)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    # a factor on the loss reaches the gradients (the backward pass scales what the forward stored)
    for got, want in zip(_grads(3.0 * out, [hidden, weight, b]), _grads(3.0 * ref, [hidden, weight, b]), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_float32_matches_within_rounding():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(300, 64, generator=g, requires_grad=True)
    weight = (0.1 * torch.randn(5000, 64, generator=g)).requires_grad_()
    targets = torch.randint(0, 5000, (300,), generator=g)
    ref = F.cross_entropy(hidden @ weight.T, targets)
    out = head_cross_entropy(hidden, weight, None, targets)  # default chunking: one chunk here
    out_chunked = head_cross_entropy(hidden, weight, None, targets, chunk_rows=64)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out_chunked, ref, rtol=1e-6, atol=1e-6)
    for got, want in zip(_grads(out_chunked, [hidden, weight]), _grads(ref, [hidden, weight]), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_bf16_autocast_follows_autocast():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(64, 32, generator=g, requires_grad=True)
    weight = torch.randn(1000, 32, generator=g, requires_grad=True)
    targets = torch.randint(0, 1000, (64,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.cross_entropy(F.linear(hidden, weight), targets)
        out = head_cross_entropy(hidden, weight, None, targets, chunk_rows=10)
    assert out.dtype == ref.dtype == torch.float32
    # the logits are the same bf16 products, the softmax is fp32 in both: the losses agree to fp32 rounding
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    got, want = _grads(out, [hidden, weight]), _grads(ref, [hidden, weight])
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.float32
        assert (a - b).abs().max() <= 0.02 * b.abs().max()  # bf16 products summed in another order


def test_only_the_wanted_gradients_are_computed():
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(20, 8, generator=g, requires_grad=True)
    weight = torch.randn(50, 8, generator=g)  # a frozen head
    bias = torch.randn(50, generator=g, requires_grad=True)
    targets = torch.randint(0, 50, (20,), generator=g)
    ref = F.cross_entropy(F.linear(hidden, weight, bias), targets)
    out = head_cross_entropy(hidden, weight, bias, targets, chunk_rows=6)
    for got, want in zip(torch.autograd.grad(out, [hidden, bias]), torch.autograd.grad(ref, [hidden, bias]),
                         strict=True):
        torch.testing.assert_close(got, want)
    with torch.no_grad():  # evaluation: the loss alone, nothing kept for a backward pass
        evaluated = head_cross_entropy(hidden, weight, bias, targets, chunk_rows=6)
    assert not evaluated.requires_grad
    torch.testing.assert_close(evaluated, ref.detach())


def test_hidden_states_are_what_the_head_receives():
    torch.manual_seed(0)
    model = GPTModel({**CFG, "drop_rate": 0.5}).eval()  # eval: dropout off, yet the dropout module is on the path
    inputs = torch.randint(0, CFG["vocab_size"], (2, 9))
    hidden = gpt_hidden_states(model, inputs)
    assert hidden.shape == (2, 9, CFG["emb_dim"])
    torch.testing.assert_close(model.out_head(hidden), model(inputs), rtol=0, atol=0)


def test_gpt_model_loss_equals_chapter_5_and_the_model_is_untouched():
    torch.manual_seed(0)
    model = GPTModel(CFG)
    inputs = torch.randint(0, CFG["vocab_size"], (3, 12))
    targets = torch.randint(0, CFG["vocab_size"], (3, 12))
    modules = dict(model.named_modules())
    ref = calc_loss_batch(inputs, targets, model, "cpu")
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    out = calc_loss_batch_fused(inputs, targets, model, "cpu")
    assert dict(model.named_modules()) == modules  # nothing swapped
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # nothing hooked
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    for (name, _), got, want in zip(model.named_parameters(), torch.autograd.grad(out, list(model.parameters())),
                                    ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
    # the drop-in also serves chapter 5's evaluation loop
    loader = [(inputs, targets)]
    with torch.no_grad():
        assert calc_loss_loader(loader, model, "cpu", loss_fn=calc_loss_batch_fused) == pytest.approx(ref.item(),
                                                                                                    abs=1e-5)


def test_too_long_input_is_refused_like_the_model_does():
    model = GPTModel(CFG)
    too_long = torch.zeros(1, CFG["context_length"] + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="context_length is 16"):
        lm_loss(model, too_long, too_long)


def test_another_head_and_hidden_states_can_be_passed():
    torch.manual_seed(0)
    model = GPTModel(CFG)
    inputs = torch.randint(0, CFG["vocab_size"], (2, 8))
    targets = torch.randint(0, CFG["vocab_size"], (2, 8))
    other = torch.nn.Linear(CFG["emb_dim"], CFG["vocab_size"])  # with a bias, unlike out_head
    hidden = gpt_hidden_states(model, inputs)
    ref = F.cross_entropy(other(hidden).flatten(0, 1), targets.flatten())
    out = lm_loss(model, inputs, targets, head=other, hidden_states=lambda x: gpt_hidden_states(model, x))
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_training_with_either_loss_gives_the_same_model():
    torch.manual_seed(0)
    a, b = GPTModel(CFG), GPTModel(CFG)
    b.load_state_dict(a.state_dict())
    # SGD: AdamW would blow the rounding noise of the key bias's gradient (exactly 0 in exact arithmetic, since
    # softmax ignores a constant shift of the scores) up to full-size steps
    opt_a, opt_b = (torch.optim.SGD(m.parameters(), lr=0.5) for m in (a, b))
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        inputs = torch.randint(0, CFG["vocab_size"], (2, 16), generator=g)
        targets = torch.randint(0, CFG["vocab_size"], (2, 16), generator=g)
        for model, opt, loss_fn in ((a, opt_a, calc_loss_batch), (b, opt_b, calc_loss_batch_fused)):
            opt.zero_grad()
            loss_fn(inputs, targets, model, "cpu").backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)


def test_compiled_hidden_states_feed_the_fused_loss():
    import functools

    torch.manual_seed(0)
    model = GPTModel(CFG)
    inputs = torch.randint(0, CFG["vocab_size"], (2, 8))
    targets = torch.randint(0, CFG["vocab_size"], (2, 8))
    ref = calc_loss_batch(inputs, targets, model, "cpu")
    # what pretrain --compile does; the eager backend takes dynamo's path without inductor's compile time
    compiled = torch.compile(functools.partial(gpt_hidden_states, model), backend="eager")
    out = lm_loss(model, inputs, targets, hidden_states=compiled)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    # a compiled model (a wrapper) passes its attributes through, so it works as the model too
    out = lm_loss(torch.compile(model, backend="eager"), inputs, targets)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_bad_inputs_are_named():
    hidden, weight = torch.randn(4, 8), torch.randn(10, 8)
    with pytest.raises(ValueError, match="flatten batch and positions"):
        head_cross_entropy(hidden[None], weight, None, torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(10, 6\) does not fit hidden states of width 8"):
        head_cross_entropy(hidden, weight[:, :6], None, torch.zeros(4, dtype=torch.long))


def test_empty_input_gives_what_cross_entropy_gives():
    hidden, weight = torch.randn(0, 8, requires_grad=True), torch.randn(10, 8)
    targets = torch.zeros(0, dtype=torch.long)
    ref = F.cross_entropy(hidden @ weight.T, targets)  # the mean over no positions: nan
    out = head_cross_entropy(hidden, weight, None, targets)
    assert torch.isnan(ref) and torch.isnan(out)


def test_chunks_stay_under_the_budget():
    rows = chunk_rows_for(50257)
    assert rows * 50257 * 4 <= 24 * 2**20 < (rows + 1) * 50257 * 4
    assert chunk_rows_for(10**9) == 1
