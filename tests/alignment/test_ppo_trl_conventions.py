"""PPO's options for TRL's conventions (all off by default): a separate value network, the score on the slot after
the last real token, unbiased whitening, and prompts walked through in shuffled passes."""

import copy
import math

import pytest
import torch
from toy_ppo import EOS, PAD, PROMPTS, good_reward, toy_policy

from llms_from_scratch.alignment.ppo import (
    PPOConfig,
    evaluate_completions,
    gae,
    score_slot_mask,
    step_prompts,
    token_rewards,
    train_ppo,
    whiten,
)
from llms_from_scratch.alignment.rl_loop import step_generator
from llms_from_scratch.alignment.sequences import pad_sequences


def test_unbiased_whitening_divides_by_n_minus_one():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, 6.0, -50.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    std = math.sqrt(17.5 / 5)  # sample std of 1..6 around the mean 3.5 (population: 17.5 / 6)
    expected = torch.tensor([[(x - 3.5) / std for x in (1, 2, 3)] + [0.0], [(x - 3.5) / std for x in (4, 5, 6)] + [0.0]])
    torch.testing.assert_close(whiten(values, mask, unbiased=True), expected)
    assert not torch.allclose(whiten(values, mask), expected)  # the default stays the population variance
    with pytest.raises(ValueError, match="two real entries"):
        whiten(values, torch.tensor([[True, False, False, False], [False] * 4]), unbiased=True)


def test_the_score_lands_on_the_slot_after_the_last_token_where_there_is_one():
    mask = torch.tensor([[True, True, False, False], [True, True, True, True], [True, False, False, False]])
    slots = score_slot_mask(mask)
    expected_slots = torch.tensor([[True, True, True, False], [True, True, True, True], [True, True, False, False]])
    assert torch.equal(slots, expected_slots)
    logprobs = torch.full((3, 4), -1.0)
    ref = torch.full((3, 4), -1.5)  # k1 = 0.5 on every real token
    rewards, kl = token_rewards(logprobs, ref, torch.tensor([1.0, 2.0, 3.0]), mask, beta=0.1, score_mask=slots)
    expected = torch.tensor([[-0.05, -0.05, 1.0, 0.0],  # the slot carries the score and no KL
                             [-0.05, -0.05, -0.05, -0.05 + 2.0],  # a full row: the last real token, as before
                             [-0.05, 3.0, 0.0, 0.0]])
    torch.testing.assert_close(rewards, expected)
    assert kl[~mask].abs().sum().item() == 0.0


def test_gae_bootstraps_through_the_slot():
    # two real tokens, the score 1.0 on the slot after them, junk on the padding after the slot
    rewards = torch.tensor([[0.1, -0.2, 1.0, 0.0]])
    values = torch.tensor([[0.3, 0.4, 0.6, 9.0]])
    advantages, returns = gae(rewards, values, score_slot_mask(torch.tensor([[True, True, False, False]])), 1.0, 0.5)
    # A2 = 1 - 0.6 = 0.4;  A1 = (-0.2 + 0.6 - 0.4) + 0.5 * 0.4 = 0.2;  A0 = (0.1 + 0.4 - 0.3) + 0.5 * 0.2 = 0.3
    torch.testing.assert_close(advantages, torch.tensor([[0.3, 0.2, 0.4, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.6, 0.6, 1.0, 0.0]]))


def test_the_value_at_the_slot_is_the_state_after_the_last_token():
    policy = toy_policy()
    prompts, completions = [[1, 2, 3], [4]], [[5, 6], [2, 3, 6]]
    prompt_ids, prompt_mask = pad_sequences(prompts, PAD, side="left")
    completion_ids, completion_mask = pad_sequences(completions, PAD, side="right")
    with torch.no_grad():
        _, values, _ = evaluate_completions(policy, prompt_ids, prompt_mask, completion_ids, completion_mask,
                                            value_mask=score_slot_mask(completion_mask))
        _, alone = policy.logits_and_values(torch.tensor([prompts[0] + completions[0]]))
    # row 0 has a slot at position 2: the value read at its end token's own position
    torch.testing.assert_close(values[0, :3], alone[0, 2:5])
    assert values[1].ne(0).all()  # the full row has no slot, its three values stay


def test_a_separate_value_network_leaves_the_policy_alone():
    shared, separate = toy_policy(), toy_policy(separate_value=True)
    assert shared.value_body is None and not any(k.startswith("value_body") for k in shared.state_dict())
    ids = torch.tensor([[1, 2, 3, 4]])
    logits, values = separate.logits_and_values(ids)
    torch.testing.assert_close(logits, separate.body(ids))
    values.sum().backward()
    assert all(p.grad is None for p in separate.body.parameters())  # the value loss never reaches the policy
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in separate.value_body.parameters())
    with torch.no_grad():  # moving the policy leaves the values as they were
        for p in separate.body.parameters():
            p.add_(1.0)
        torch.testing.assert_close(separate.logits_and_values(ids)[1], values.detach())


def test_prompts_walk_through_shuffled_passes():
    config = PPOConfig(prompts_per_step=3, prompt_order="epochs", seed=7)
    first_pass = [step_prompts(config, 10, step) for step in range(3)]
    flat = [i for batch in first_pass for i in batch]
    assert len(flat) == len(set(flat)) == 9  # no repeats within a pass; the tenth prompt waits for the next
    assert step_prompts(config, 10, 3) != first_pass[0]  # a new pass, a new order
    assert step_prompts(config, 10, 1) == first_pass[1]  # fixed by (seed, step): a resumed run draws the same
    random_order = PPOConfig(prompts_per_step=3, seed=7)  # the default draws afresh every step, as before
    generator = step_generator(7, 4, 0, torch.device("cpu"))
    assert step_prompts(random_order, 10, 4) == torch.randperm(10, generator=generator)[:3].tolist()
    with pytest.raises(ValueError, match="prompt_order"):
        PPOConfig(prompt_order="sorted")


def test_a_few_steps_with_all_of_trls_conventions_raise_a_toy_reward():
    policy = toy_policy(separate_value=True)
    reference = copy.deepcopy(policy.body)
    config = PPOConfig(steps=10, prompts_per_step=6, ppo_epochs=2, minibatch_size=3, learning_rate=1e-2,
                       max_new_tokens=3, beta=0.05, eval_interval=10, no_eos_penalty=0.0, score_after_last=True,
                       unbiased_whitening=True, max_grad_norm=None, prompt_order="epochs")
    critic_before = copy.deepcopy(policy.value_body)
    history = train_ppo(policy, reference, PROMPTS, good_reward, config, eos_token_id=EOS, pad_token_id=PAD,
                        progress=False)
    assert sum(history["reward"][-3:]) > sum(history["reward"][:3]), history["reward"]
    assert all(math.isfinite(v) for v in history["value_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(critic_before.parameters(), policy.value_body.parameters()))


def test_the_comparison_script_maps_each_convention_to_an_option():
    import importlib.util
    from pathlib import Path

    from llms_from_scratch.alignment.ppo_addition import PPOAdditionRecipe

    path = Path(__file__).resolve().parents[2] / "ch07" / "08_ppo" / "compare_trl_ppo.py"
    spec = importlib.util.spec_from_file_location("compare_trl_ppo", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # TRL is imported only when a run starts
    recipe = PPOAdditionRecipe()
    assert script.with_trl_conventions(recipe, []) is False and recipe.ppo == PPOAdditionRecipe().ppo
    assert script.with_trl_conventions(recipe, list(script.TRL_CONVENTIONS)) is True
    c = recipe.ppo
    assert (c.score_after_last, c.unbiased_whitening, c.max_grad_norm, c.prompt_order) == (True, True, None, "epochs")
