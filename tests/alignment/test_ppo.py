"""PPO: GAE, whitening, the clipped policy and value losses and the token rewards by hand; the value head read
from one forward pass; a short run that raises a toy reward with a bounded KL; resume equal to an uninterrupted
run."""

import copy
import math

import pytest
import torch
from toy_ppo import CFG, EOS, GOOD, PAD, PROMPTS, good_reward, toy_policy

from llms_from_scratch.alignment.logprobs import completion_logprobs
from llms_from_scratch.alignment.ppo import (
    PPOConfig,
    evaluate_completions,
    gae,
    policy_loss,
    token_rewards,
    train_ppo,
    value_loss,
    whiten,
)
from llms_from_scratch.alignment.sequences import pad_sequences
from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.training.checkpoints import CHECKSUM_KEY, CheckpointError, read_checkpoint, state_checksum


def test_gae_by_hand_with_right_and_left_padding():
    gamma, lam = 0.9, 0.8
    # row 0: three real tokens then padding; row 1: the same trajectory left-padded. Padding holds junk on purpose.
    rewards = torch.tensor([[1.0, 0.0, 2.0, 5.0], [3.0, 1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 0.0, 9.0], [7.0, 0.5, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [False, True, True, True]])
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    # A2 = 2 + 0.9*0 - 0 = 2;  A1 = (0 + 0.9*0 - 1) + 0.72*2 = 0.44;  A0 = (1 + 0.9*1 - 0.5) + 0.72*0.44 = 1.7168
    expected = torch.tensor([[1.7168, 0.44, 2.0, 0.0], [0.0, 1.7168, 0.44, 2.0]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, torch.tensor([[2.2168, 1.44, 2.0, 0.0], [0.0, 2.2168, 1.44, 2.0]]))
    # gamma = lam = 1: the advantage is the sum of the rewards still to come minus the value
    advantages, _ = gae(rewards, values, mask, 1.0, 1.0)
    torch.testing.assert_close(advantages[0], torch.tensor([3.0 - 0.5, 2.0 - 1.0, 2.0, 0.0]))


def test_whitening_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, 6.0, -50.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    std = math.sqrt(17.5 / 6)  # population std of 1..6 around the mean 3.5
    expected = torch.tensor([[(x - 3.5) / std for x in (1, 2, 3)] + [0.0], [(x - 3.5) / std for x in (4, 5, 6)] + [0.0]])
    torch.testing.assert_close(whiten(values, mask), expected)
    other_padding = values.clone()
    other_padding[:, 3] = torch.tensor([-7.0, 1e4])
    torch.testing.assert_close(whiten(other_padding, mask), expected)
    scaled = whiten(values, mask, shift_mean=False)  # scale only, as for rewards
    torch.testing.assert_close(scaled[mask], expected[mask] + 3.5)
    assert scaled[0, 3].item() == 0.0


def test_policy_loss_by_hand():
    # ratios (old log-probs are 0) and per-token advantages of both signs; the last token is padding
    logprobs = torch.log(torch.tensor([[1.5, 0.5, 1.1], [0.5, 1.5, 7.0]])).requires_grad_(True)
    advantages = torch.tensor([[1.0, 1.0, -1.0], [-1.0, -1.0, 5.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    loss, clip_fraction = policy_loss(logprobs, torch.zeros(2, 3), advantages, mask, clip_eps=0.2)
    # A>0: min(1.5, 1.2) = 1.2 (clipped), min(0.5, 0.8) = 0.5; inside the range: -1.1;
    # A<0: min(-0.5, -0.8) = -0.8 (clipped), min(-1.5, -1.2) = -1.5
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 1.1 - 0.8 - 1.5) / 5)
    assert clip_fraction.item() == pytest.approx(2 / 5)
    loss.backward()
    # d loss / d log-prob = -ratio * A / 5 where unclipped, 0 where clipping bites or on padding
    expected = torch.tensor([[0.0, -0.5 / 5, 1.1 / 5], [0.0, 1.5 / 5, 0.0]])
    torch.testing.assert_close(logprobs.grad, expected)


def test_value_loss_by_hand():
    values = torch.tensor([[1.0, 0.0, 2.0, 4.0]])
    old = torch.tensor([[0.5, 0.5, 2.0, 0.0]])
    returns = torch.tensor([[2.0, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    loss, clipped = value_loss(values, old, returns, mask, value_clip=0.2)
    # clipped values 0.7, 0.3, 2.0: max(1, 1.69), max(0, 0.09), max(1, 1) -> 0.5 * (1.69 + 0.09 + 1) / 3
    assert loss.item() == pytest.approx(0.5 * 2.78 / 3)
    assert clipped.item() == pytest.approx(2 / 3)
    plain, _ = value_loss(values, old, returns, mask, value_clip=None)
    assert plain.item() == pytest.approx(0.5 * 2.0 / 3)


@pytest.mark.parametrize("side", ["right", "left"])
def test_score_lands_on_the_last_real_token(side):
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    logprobs = torch.tensor([[-1.0, -2.0, -3.0, 0.0], [-0.5, 0.0, 0.0, 0.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.5, -9.0], [-1.0, -9.0, -9.0, -9.0]])
    scores = torch.tensor([1.0, 2.0])
    if side == "left":  # move the real tokens to the end of each row
        shift = [1, 3]
        mask, logprobs, ref = ([torch.roll(t[i], s) for i, s in enumerate(shift)] for t in (mask, logprobs, ref))
        mask, logprobs, ref = torch.stack(mask), torch.stack(logprobs), torch.stack(ref)
    rewards, kl = token_rewards(logprobs, ref, scores, mask, beta=0.1)
    # k1 per token: log pi - log pi_ref = 0.5, 0, -0.5 and 0.5; reward -0.1 * kl, score added at the last real token
    expected = torch.tensor([[-0.05, 0.0, 0.05 + 1.0, 0.0], [-0.05 + 2.0, 0.0, 0.0, 0.0]])
    if side == "left":
        expected = torch.stack([torch.roll(expected[0], 1), torch.roll(expected[1], 3)])
    torch.testing.assert_close(rewards, expected)
    assert kl[~mask].abs().sum().item() == 0.0


def test_no_eos_penalty():
    mask = torch.tensor([[True, True], [True, True]])
    zeros = torch.zeros(2, 2)
    rewards, _ = token_rewards(zeros, zeros, torch.tensor([1.0, 1.0]), mask, torch.tensor([True, False]), beta=0.1,
                               no_eos_penalty=0.75)
    torch.testing.assert_close(rewards, torch.tensor([[0.0, 1.0], [0.0, 0.25]]))


def test_values_and_logprobs_come_from_one_forward_pass():
    policy = toy_policy()
    prompts = [[1, 2, 3], [4]]
    completions = [[5, 6], [2, 3, 6]]
    prompt_ids, prompt_mask = pad_sequences(prompts, PAD, side="left")
    completion_ids, completion_mask = pad_sequences(completions, PAD, side="right")
    with torch.no_grad():
        logprobs, values, entropy = evaluate_completions(policy, prompt_ids, prompt_mask, completion_ids,
                                                         completion_mask, with_entropy=True)
        torch.testing.assert_close(logprobs, completion_logprobs(policy.body, prompt_ids, prompt_mask,
                                                                 completion_ids, completion_mask))
        for i, (p, c) in enumerate(zip(prompts, completions)):
            logits, alone = policy.logits_and_values(torch.tensor([p + c]))  # the row alone, no padding
            # the value of the state before completion token t is read at position len(p) - 1 + t
            torch.testing.assert_close(values[i, :len(c)], alone[0, len(p) - 1:len(p) - 1 + len(c)])
            log_p = torch.log_softmax(logits[0, len(p) - 1:len(p) - 1 + len(c)], dim=-1)
            torch.testing.assert_close(entropy[i, :len(c)], -(log_p.exp() * log_p).sum(-1))
        assert values[0, 2].item() == 0.0 and entropy[0, 2].item() == 0.0  # padding
    # a deep copy of the policy carries no leftover hook
    assert len(copy.deepcopy(policy).body.final_norm._forward_hooks) == 0


def _prob_of_good(model):
    ids, mask = pad_sequences(PROMPTS, PAD, side="left")
    completion = torch.full((len(PROMPTS), 1), GOOD)
    with torch.no_grad():
        return completion_logprobs(model, ids, mask, completion, torch.ones_like(completion, dtype=torch.bool)).exp()


def test_a_few_ppo_steps_raise_a_toy_reward_with_bounded_kl():
    policy = toy_policy()
    reference = copy.deepcopy(policy.body)
    before = _prob_of_good(policy)
    config = PPOConfig(steps=10, prompts_per_step=6, ppo_epochs=2, minibatch_size=3, learning_rate=1e-2,
                       max_new_tokens=2, beta=0.05, eval_interval=5, no_eos_penalty=0.0, gamma=1.0, lam=0.95)
    history = train_ppo(policy, reference, PROMPTS, good_reward, config, eos_token_id=EOS, pad_token_id=PAD,
                        evaluate=lambda m: {"p_good": _prob_of_good(m).mean().item()}, progress=False)
    after = _prob_of_good(policy)
    assert after.mean() > 2 * before.mean(), (before, after)
    assert history["eval_step"] == [0, 5, 10]
    assert history["eval"]["p_good"][-1] > history["eval"]["p_good"][0]
    assert sum(history["reward"][-3:]) > sum(history["reward"][:3])
    # bounded KL: the sequence KL to the reference stays below what a policy that always samples GOOD would
    # pay on its first token, log(1 / p_ref(GOOD))
    bound = torch.log(1 / before).max().item()
    assert all(math.isfinite(kl) for kl in history["kl"])
    assert max(history["kl"]) < bound, (history["kl"], bound)
    for p, q in zip(reference.parameters(), toy_policy().body.parameters()):  # the reference never moves
        assert torch.equal(p, q)


def test_the_kl_penalty_holds_the_policy_near_the_reference():
    runs = {}
    for beta in (0.0, 0.5):
        policy = toy_policy()
        config = PPOConfig(steps=10, prompts_per_step=6, ppo_epochs=2, minibatch_size=3, learning_rate=1e-2,
                           max_new_tokens=2, beta=beta, eval_interval=10, no_eos_penalty=0.0)
        history = train_ppo(policy, copy.deepcopy(policy.body), PROMPTS, good_reward, config, eos_token_id=EOS,
                            pad_token_id=PAD, progress=False)
        runs[beta] = (sum(history["kl"][5:]) / 5, _prob_of_good(policy).mean().item())
    # same seed, same samples at first: the penalised run drifts less and so also chases the reward less
    assert runs[0.5][0] < runs[0.0][0], runs
    assert runs[0.5][1] < runs[0.0][1], runs


def _config(**changes):
    settings = dict(steps=4, prompts_per_step=4, ppo_epochs=2, minibatch_size=2, learning_rate=1e-2,
                    max_new_tokens=2, eval_interval=2, entropy_coef=0.01)  # the entropy bonus takes part
    settings.update(changes)
    return PPOConfig(**settings)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    kwargs = dict(eos_token_id=EOS, pad_token_id=PAD, progress=False)
    straight = toy_policy()
    full = train_ppo(straight, copy.deepcopy(straight.body), PROMPTS, good_reward, _config(), **kwargs)

    resumed = toy_policy()
    reference = copy.deepcopy(resumed.body)
    path = tmp_path / "ppo.pth"
    train_ppo(resumed, reference, PROMPTS, good_reward, _config(), checkpoint_path=path, stop_at_step=2, **kwargs)
    fresh = toy_policy(seed=5)  # other weights: resuming must restore the checkpoint's, value head included
    rest = train_ppo(fresh, reference, PROMPTS, good_reward, _config(), checkpoint_path=path, resume=True, **kwargs)
    for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    for key in ("reward", "kl", "policy_loss", "value_loss", "entropy"):
        assert rest[key] == full[key]

    with pytest.raises(CheckpointError, match="vf_coef"):
        train_ppo(toy_policy(), reference, PROMPTS, good_reward, _config(vf_coef=0.5), checkpoint_path=path,
                  resume=True, **kwargs)

    # a checkpoint written before a setting existed resumes when the setting is at its default, not otherwise
    ckpt = read_checkpoint(path)
    del ckpt["config"]["score_after_last"]
    torch.save({**ckpt, CHECKSUM_KEY: state_checksum(ckpt)}, path)
    train_ppo(toy_policy(), reference, PROMPTS, good_reward, _config(), checkpoint_path=path, resume=True, **kwargs)
    with pytest.raises(CheckpointError, match="score_after_last"):
        train_ppo(toy_policy(), reference, PROMPTS, good_reward, _config(score_after_last=True), checkpoint_path=path,
                  resume=True, **kwargs)


def test_config_and_arguments_are_checked():
    with pytest.raises(ValueError, match="kl_estimator"):
        PPOConfig(kl_estimator="k2")
    with pytest.raises(ValueError, match="gamma"):
        PPOConfig(lam=1.5)
    with pytest.raises(ValueError, match="temperature"):
        PPOConfig(temperature=0.0)
    policy = toy_policy()
    with pytest.raises(ValueError, match="shares weights"):
        train_ppo(policy, policy.body, PROMPTS, good_reward, _config(), eos_token_id=EOS, pad_token_id=PAD,
                  progress=False)
    with pytest.raises(TypeError, match="PolicyWithValueHead"):
        train_ppo(GPTModel(CFG), GPTModel(CFG), PROMPTS, good_reward, _config(), eos_token_id=EOS,
                  pad_token_id=PAD, progress=False)
