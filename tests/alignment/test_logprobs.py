"""Per-token log-probabilities with either padding side, KL estimators by hand, and rollouts that stop at EOS."""

import math

import pytest
import torch

from llms_from_scratch.alignment.logprobs import (
    completion_logprobs,
    compute_logprobs,
    kl_estimate,
    token_logprobs,
)
from llms_from_scratch.alignment.rollouts import sample_completions
from llms_from_scratch.alignment.sequences import pad_sequences
from llms_from_scratch.ch04 import GPTModel

CFG = {"vocab_size": 12, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
       "qkv_bias": False}
PAD, EOS = 11, 10


def _model(seed=0):
    torch.manual_seed(seed)
    return GPTModel(CFG).eval()


def _alone(model, prompt, completion):
    """Log-probs of ``completion`` after ``prompt``, from one unpadded forward pass and a plain log_softmax."""
    ids = torch.tensor([prompt + completion])
    log_probs = torch.log_softmax(model(ids)[0], dim=-1)
    return torch.stack([log_probs[len(prompt) - 1 + j, tok] for j, tok in enumerate(completion)])


def test_token_logprobs_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [1 / 3, 1 / 3, 1 / 3]]]))
    labels = torch.tensor([[2, 1, 0]])  # token 1 predicted from position 0, token 0 from position 1
    torch.testing.assert_close(token_logprobs(logits, labels), torch.log(torch.tensor([[0.25, 0.1]])))
    # DPO's per-sequence mean over the selected tokens only (the second one)
    mean = compute_logprobs(logits, labels, torch.tensor([[True, False, True]]))
    assert mean.item() == pytest.approx(math.log(0.1), rel=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
def test_completion_logprobs_equal_a_plain_forward_pass(side):
    model = _model()
    prompts = [[1, 2, 3, 4, 5], [6], [7, 8, 9]]
    completions = [[2, EOS], [3, 4, 5, 6], [9]]
    prompt_ids, prompt_mask = pad_sequences(prompts, PAD, side=side)
    completion_ids, completion_mask = pad_sequences(completions, PAD, side="right")
    got = completion_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    assert got.shape == (3, 4)
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        torch.testing.assert_close(got[i, :len(completion)], _alone(model, prompt, completion),
                                   rtol=1e-5, atol=1e-5)
        assert torch.all(got[i, len(completion):] == 0)


def test_pad_id_does_not_change_logprobs():
    model = _model()
    prompts, completions = [[1, 2], [3, 4, 5]], [[6, 7], [8]]
    results = []
    for pad in (0, PAD):
        prompt_ids, prompt_mask = pad_sequences(prompts, pad, side="left")
        completion_ids, completion_mask = pad_sequences(completions, pad, side="right")
        results.append(completion_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_kl_estimators_by_hand():
    logp = torch.tensor([math.log(0.5), math.log(0.2)])
    ref = torch.tensor([math.log(0.25), math.log(0.4)])
    # k1 = log p - log q; k3 = q/p - 1 - log(q/p)
    torch.testing.assert_close(kl_estimate(logp, ref, "k1"), torch.tensor([math.log(2.0), math.log(0.5)]))
    expected_k3 = torch.tensor([0.5 - 1 - math.log(0.5), 2.0 - 1 - math.log(2.0)])
    torch.testing.assert_close(kl_estimate(logp, ref, "k3"), expected_k3)
    assert torch.all(kl_estimate(ref, ref, "k3") == 0)
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_estimate(logp, ref, "k9")


def test_kl_estimators_are_unbiased_on_average():
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.3, 0.3, 0.4])
    exact = (p * (p / q).log()).sum()
    # the expectation over samples from p, computed exactly by weighting every outcome by p
    for estimator in ("k1", "k3"):
        estimate = (p * kl_estimate(p.log(), q.log(), estimator)).sum()
        torch.testing.assert_close(estimate, exact)


class _Scripted(torch.nn.Module):
    """A 'model' whose next token is a fixed function of the last real token: t -> script[t]."""

    def __init__(self, script):
        super().__init__()
        self.script = script
        self.weight = torch.nn.Parameter(torch.zeros(1))  # so that the model has a device

    def forward(self, ids):
        logits = torch.full((*ids.shape, CFG["vocab_size"]), -1e4)
        nxt = torch.tensor([[self.script.get(int(t), 0) for t in row] for row in ids])
        return logits.scatter(-1, nxt.unsqueeze(-1), 0.0)


def test_rollouts_stop_at_eos_with_masks():
    # 1 -> 2 -> EOS ; 5 -> 6 -> 7 -> 8 -> ... never ends within the budget
    model = _Scripted({1: 2, 2: EOS, 5: 6, 6: 7, 7: 8, 8: 9, 9: 6})
    rollouts = sample_completions(model, [[3, 1], [5]], max_new_tokens=4, eos_token_id=EOS, pad_token_id=PAD,
                                  num_samples=2, temperature=0.0)
    assert rollouts.prompt_ids.tolist() == [[3, 1], [3, 1], [PAD, 5], [PAD, 5]]
    assert rollouts.completion_ids[0].tolist() == [2, EOS, PAD, PAD]
    assert rollouts.completion_mask[0].tolist() == [True, True, False, False]
    assert rollouts.completion_ids[2].tolist() == [6, 7, 8, 9]
    assert rollouts.completion_mask[2].all()
    assert rollouts.ended.tolist() == [True, True, False, False]
    assert rollouts.completions() == [[2, EOS], [2, EOS], [6, 7, 8, 9], [6, 7, 8, 9]]


def test_sampled_rollouts_are_reproducible_and_their_logprobs_match():
    model = _model(1)
    prompts = [[1, 2, 3], [4]]
    kwargs = dict(max_new_tokens=5, eos_token_id=EOS, pad_token_id=PAD, num_samples=3, temperature=1.0)
    first = sample_completions(model, prompts, generator=torch.Generator().manual_seed(7), **kwargs)
    second = sample_completions(model, prompts, generator=torch.Generator().manual_seed(7), **kwargs)
    assert torch.equal(first.completion_ids, second.completion_ids)
    # after the first EOS nothing is generated
    for row, mask, ended in zip(first.completion_ids, first.completion_mask, first.ended):
        real = row[mask].tolist()
        assert EOS not in real[:-1]
        assert ended == (len(real) > 0 and real[-1] == EOS)
        assert torch.all(row[~mask] == PAD)
    got = completion_logprobs(model, first.prompt_ids, first.prompt_mask, first.completion_ids,
                              first.completion_mask)
    for i, completion in enumerate(first.completions()):
        prompt = prompts[i // 3]
        torch.testing.assert_close(got[i, :len(completion)], _alone(model, prompt, completion),
                                   rtol=1e-5, atol=1e-5)


def test_rollouts_refuse_a_too_long_request():
    with pytest.raises(ValueError, match="context_length"):
        sample_completions(_model(), [[1] * 14], max_new_tokens=4, eos_token_id=EOS, pad_token_id=PAD)
