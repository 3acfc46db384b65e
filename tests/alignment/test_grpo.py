"""GRPO: advantages, the clipped objective and both loss normalisations by hand; a short run that raises a toy
reward; resume equal to an uninterrupted run; the addition task's helpers."""

import copy
import math

import pytest
import torch

from llms_from_scratch.alignment.addition import (
    AdditionTokenizer,
    addition_split,
    exact_match_reward,
    pass_at_k,
    prompt_text,
    target_ids,
)
from llms_from_scratch.alignment.grpo import (
    GRPOConfig,
    clipped_objective,
    group_advantages,
    grpo_loss,
    grpo_step,
    train_grpo,
    zero_variance_fraction,
)
from llms_from_scratch.alignment.logprobs import completion_logprobs
from llms_from_scratch.alignment.rollouts import sample_completions
from llms_from_scratch.alignment.sequences import pad_sequences
from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.training.checkpoints import CheckpointError

CFG = {"vocab_size": 8, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
       "qkv_bias": False}
EOS, PAD, GOOD = 6, 7, 3
PROMPTS = [[1], [2], [4], [5]]


def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 1.0, 1.0]])
    std1 = math.sqrt(4 * 0.25 / 3)  # sample standard deviation of (1, 0, 0, 1)
    std3 = math.sqrt(2 / 3)  # of (2, 0, 1, 1)
    expected = torch.tensor([[0.5 / (std1 + 1e-4), -0.5 / (std1 + 1e-4), -0.5 / (std1 + 1e-4), 0.5 / (std1 + 1e-4)],
                             [0.0, 0.0, 0.0, 0.0],
                             [1 / (std3 + 1e-4), -1 / (std3 + 1e-4), 0.0, 0.0]])
    torch.testing.assert_close(group_advantages(rewards), expected)
    # Dr. GRPO: centred only
    torch.testing.assert_close(group_advantages(rewards, scale_by_std=False),
                               torch.tensor([[0.5, -0.5, -0.5, 0.5], [0.0] * 4, [1.0, -1.0, 0.0, 0.0]]))
    assert zero_variance_fraction(rewards) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.ones(3, 1))


def test_clipped_objective_by_hand():
    old = torch.zeros(4, 1)
    logprobs = torch.log(torch.tensor([[1.5], [0.5], [0.5], [1.5]]))  # ratios, since old log-probs are 0
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    objective, clipped = clipped_objective(logprobs, old, advantages, clip_eps=0.2)
    # A > 0: min(1.5, 1.2) = 1.2 (clipped), min(0.5, 0.8) = 0.5; A < 0: min(-0.5, -0.8) = -0.8 (clipped),
    # min(-1.5, -1.2) = -1.5
    torch.testing.assert_close(objective, torch.tensor([[1.2], [0.5], [-0.8], [-1.5]]))
    assert clipped.flatten().tolist() == [True, False, True, False]
    # where clipping bites the gradient vanishes
    logprobs.requires_grad_(True)
    clipped_objective(logprobs, old, advantages, clip_eps=0.2)[0].sum().backward()
    torch.testing.assert_close(logprobs.grad.flatten(), torch.tensor([0.0, 0.5, 0.0, -1.5]))


def test_grpo_and_dr_grpo_normalise_differently():
    # ratio 1 everywhere: each token's objective is its advantage
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    logprobs = torch.zeros(2, 4)
    advantages = torch.tensor([1.0, -1.0])
    loss, stats = grpo_loss(logprobs, logprobs, advantages, mask)
    # GRPO: mean over each completion's tokens (1 and -1), then over completions: -(1 - 1) / 2 = 0
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    assert math.isnan(stats["kl"])
    dr_loss, _ = grpo_loss(logprobs, logprobs, advantages, mask, dr_grpo=True, max_new_tokens=5)
    # Dr. GRPO: sum of token terms -(3 * 1 + 1 * -1) = -2, over 2 completions * 5 tokens
    assert dr_loss.item() == pytest.approx(-2 / 10)
    dr_default, _ = grpo_loss(logprobs, logprobs, advantages, mask, dr_grpo=True)
    assert dr_default.item() == pytest.approx(-2 / 8)  # default constant: the 4 completion columns


def test_kl_penalty_enters_the_loss():
    mask = torch.tensor([[True, True]])
    logprobs = torch.log(torch.tensor([[0.5, 0.2]]))
    ref = torch.log(torch.tensor([[0.25, 0.4]]))
    k3 = torch.tensor([0.5 - 1 - math.log(0.5), 2.0 - 1 - math.log(2.0)])
    loss, stats = grpo_loss(logprobs, logprobs, torch.tensor([0.0]), mask, ref_logprobs=ref, beta=0.1)
    assert loss.item() == pytest.approx(0.1 * k3.mean().item(), rel=1e-6)
    assert stats["kl"] == pytest.approx(k3.mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(logprobs, logprobs, torch.tensor([0.0]), mask, beta=0.1)


def _policy(seed=0):
    torch.manual_seed(seed)
    return GPTModel(CFG)


def _good_token_reward(index, completion):
    """1 for a completion that starts with GOOD, else 0 (any prompt)."""
    return 1.0 if completion[:1] == [GOOD] else 0.0


def _prob_of_good(model):
    ids, mask = pad_sequences(PROMPTS, PAD, side="left")
    completion = torch.full((len(PROMPTS), 1), GOOD)
    with torch.no_grad():
        return completion_logprobs(model, ids, mask, completion, torch.ones_like(completion, dtype=torch.bool)).exp()


@pytest.mark.parametrize("dr_grpo", [False, True])
def test_a_few_grpo_steps_raise_a_toy_reward(dr_grpo):
    policy = _policy()
    reference = copy.deepcopy(policy)
    before = _prob_of_good(policy)
    config = GRPOConfig(steps=8, prompts_per_step=4, group_size=8, learning_rate=1e-2, max_new_tokens=2,
                        beta=0.01, dr_grpo=dr_grpo, updates_per_batch=2, eval_interval=4)
    history = train_grpo(policy, reference, PROMPTS, _good_token_reward, config, eos_token_id=EOS,
                         pad_token_id=PAD, evaluate=lambda m: {"p_good": _prob_of_good(m).mean().item()},
                         progress=False)
    after = _prob_of_good(policy)
    assert torch.all(after > before), (before, after)
    assert after.mean() > 2 * before.mean()
    assert history["eval_step"] == [0, 4, 8]
    assert history["eval"]["p_good"][-1] > history["eval"]["p_good"][0]
    assert all(kl >= 0 for kl in history["kl"])
    assert len(history["reward"]) == 8
    # the reference never moves
    for p, q in zip(reference.parameters(), _policy().parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("skip", [False, True])
def test_a_batch_without_reward_variance_moves_nothing_only_when_skipped(skip):
    """Every completion scores 1: the advantages and the gradient are zero, yet AdamW's weight decay (and any
    momentum) would still move the weights; ``skip_flat_batches`` takes no optimizer step then."""
    policy = _policy()
    before = [p.detach().clone() for p in policy.parameters()]
    config = GRPOConfig(steps=1, prompts_per_step=2, group_size=4, max_new_tokens=2, weight_decay=0.1)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2, weight_decay=config.weight_decay)
    calls = []

    def sampler(*args, **kwargs):  # a sampler passed in replaces the default one
        calls.append(kwargs["num_samples"])
        return sample_completions(*args, **kwargs)

    stats = grpo_step(policy, None, optimizer, PROMPTS, [0, 1], lambda i, c: 1.0, config, eos_token_id=EOS,
                      pad_token_id=PAD, generator=torch.Generator().manual_seed(0), sampler=sampler,
                      skip_flat_batches=skip)
    assert calls == [4] and stats["zero_variance"] == 1.0
    unchanged = all(torch.equal(p, q) for p, q in zip(policy.parameters(), before))
    assert unchanged == skip
    if skip:
        assert (stats["loss"], stats["clip_fraction"]) == (0.0, 0.0)


def _config(**changes):
    settings = dict(steps=4, prompts_per_step=2, group_size=4, learning_rate=1e-2, max_new_tokens=2, eval_interval=2)
    settings.update(changes)
    return GRPOConfig(**settings)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    kwargs = dict(eos_token_id=EOS, pad_token_id=PAD, progress=False)
    straight = _policy()
    full = train_grpo(straight, copy.deepcopy(straight), PROMPTS, _good_token_reward, _config(), **kwargs)

    resumed = _policy()
    reference = copy.deepcopy(resumed)
    path = tmp_path / "grpo.pth"
    train_grpo(resumed, reference, PROMPTS, _good_token_reward, _config(), checkpoint_path=path, stop_at_step=2,
               **kwargs)
    fresh = _policy(seed=5)  # other weights: resuming must restore the checkpoint's
    rest = train_grpo(fresh, reference, PROMPTS, _good_token_reward, _config(), checkpoint_path=path, resume=True,
                      **kwargs)
    for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    for key in ("reward", "loss", "kl", "zero_variance"):
        assert rest[key] == full[key]

    with pytest.raises(CheckpointError, match="learning_rate"):
        train_grpo(_policy(), reference, PROMPTS, _good_token_reward, _config(learning_rate=1e-3),
                   checkpoint_path=path, resume=True, **kwargs)


def test_config_and_arguments_are_checked():
    with pytest.raises(ValueError, match="group_size"):
        GRPOConfig(group_size=1)
    with pytest.raises(ValueError, match="kl_estimator"):
        GRPOConfig(kl_estimator="k2")
    with pytest.raises(ValueError, match="warmup_steps"):
        GRPOConfig(warmup_steps=-1)
    with pytest.raises(ValueError, match="reference"):
        train_grpo(_policy(), None, PROMPTS, _good_token_reward, _config(beta=0.1), eos_token_id=EOS,
                   pad_token_id=PAD, progress=False)


def test_addition_task_helpers():
    tok = AdditionTokenizer()
    assert tok.decode(tok.encode("12+45=")) == "12+45="
    assert tok.decode(target_ids(tok, (12, 45))) == "57<eos>"
    split = addition_split(num_test=500, num_val=200)
    test, val, train = set(split.test), set(split.val), set(split.train)
    assert len(test) == 500 and len(val) == 200 and len(train) == 8100 - 700
    assert not (test & train) and not (val & train) and not (test & val)
    reward = exact_match_reward(tok, [(12, 45), (99, 99)])
    assert reward(0, tok.encode("57") + [tok.eos_token_id]) == 1.0
    assert reward(0, tok.encode("57")) == 0.0  # no end token: not an answer
    assert reward(1, tok.encode("198") + [tok.eos_token_id]) == 1.0
    assert prompt_text((99, 99)) == "99+99="
    with pytest.raises(ValueError, match="vocabulary"):
        tok.encode("1-2")


def test_pass_at_k_by_hand():
    assert pass_at_k(8, 0, 1) == 0.0
    assert pass_at_k(8, 2, 1) == pytest.approx(2 / 8)
    assert pass_at_k(8, 1, 8) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # 1 - 3/6
    with pytest.raises(ValueError, match="samples"):
        pass_at_k(2, 1, 3)
