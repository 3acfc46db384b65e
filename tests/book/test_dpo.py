"""DPO: the loss against -log sigmoid(beta * margin) by hand, masks, a frozen reference, and a rising margin."""

import copy
import math

import pytest
import torch

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.data import gpt2_encoding
from llms_from_scratch.dpo import (
    PreferenceDataset,
    compute_dpo_loss,
    compute_dpo_loss_batch,
    compute_logprobs,
    preference_collate_fn,
    train_model_dpo_simple,
)

CFG = {"vocab_size": 50, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": False}


def test_dpo_loss_matches_hand_computation():
    beta = 0.5
    policy_chosen, policy_rejected = torch.tensor([-1.0, -0.2]), torch.tensor([-2.0, -0.1])
    ref_chosen, ref_rejected = torch.tensor([-1.5, -0.3]), torch.tensor([-1.5, -0.4])
    loss, chosen_reward, rejected_reward = compute_dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected,
                                                            beta=beta)
    # example 1: margin = (-1 + 1.5) - (-2 + 1.5) = 1.0; example 2: (0.1) - (0.3) = -0.2
    by_hand = [-math.log(1 / (1 + math.exp(-beta * m))) for m in (1.0, -0.2)]
    assert loss.item() == pytest.approx(sum(by_hand) / 2, rel=1e-6)
    assert chosen_reward.item() == pytest.approx(beta * (0.5 + 0.1) / 2, rel=1e-6)
    assert rejected_reward.item() == pytest.approx(beta * (-0.5 + 0.3) / 2, rel=1e-6)
    # identical policy and reference: margin 0, loss log 2
    zero_loss, _, _ = compute_dpo_loss(ref_chosen, ref_rejected, ref_chosen, ref_rejected)
    assert zero_loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_compute_logprobs_by_hand_with_mask():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]])  # (1, 3 positions, 3 tokens)
    labels = torch.tensor([[0, 1, 2]])
    log_probs = torch.log_softmax(logits, dim=-1)
    # position 0 predicts label 1, position 1 predicts label 2; position 2 predicts nothing
    assert compute_logprobs(logits, labels).item() == pytest.approx(
        ((log_probs[0, 0, 1] + log_probs[0, 1, 2]) / 2).item(), rel=1e-6)
    mask = torch.tensor([[False, False, True]])  # only the last token is response
    assert compute_logprobs(logits, labels, mask).item() == pytest.approx(log_probs[0, 1, 2].item(), rel=1e-6)
    with pytest.raises(ValueError, match="no selected tokens"):
        compute_logprobs(logits, labels, torch.zeros(1, 3, dtype=torch.bool))


def test_collate_masks_prompt_and_padding():
    batch = [{"prompt": [1, 2], "chosen": [1, 2, 3, 4], "rejected": [1, 2, 5]},
             {"prompt": [6], "chosen": [6, 7], "rejected": [6, 8, 9, 10, 11]}]
    out = preference_collate_fn(batch, pad_token_id=0)
    assert out["chosen"].tolist() == [[1, 2, 3, 4, 0], [6, 7, 0, 0, 0]]
    assert out["rejected_mask"].tolist() == [[False, False, True, False, False], [False, True, True, True, True]]
    assert out["chosen_mask"].tolist() == [[False, False, True, True, False], [False, True, False, False, False]]
    unmasked = preference_collate_fn(batch, pad_token_id=0, mask_prompt_tokens=False, allowed_max_length=3)
    assert unmasked["chosen_mask"].tolist() == [[True, True, True], [True, True, False]]


def test_preference_dataset_uses_the_prompt_format():
    tokenizer = gpt2_encoding()
    entry = {"instruction": "Say hi.", "input": "", "output": "Hi.", "chosen": "Hi!", "rejected": "No."}
    item = PreferenceDataset([entry], tokenizer)[0]
    assert item["chosen"][:len(item["prompt"])] == item["prompt"]
    assert tokenizer.decode(item["chosen"][len(item["prompt"]):]) == "Hi!"
    with pytest.raises(ValueError, match="chosen"):
        PreferenceDataset([{"instruction": "x", "input": "", "output": "y"}], tokenizer)


def test_training_raises_margin_and_keeps_reference_frozen():
    torch.manual_seed(0)
    reference = GPTModel(CFG)
    policy = copy.deepcopy(reference)
    reference_before = {k: v.clone() for k, v in reference.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    items = []
    for _ in range(4):
        prompt = torch.randint(0, 50, (4,), generator=generator).tolist()
        items.append({"prompt": prompt,
                      "chosen": prompt + torch.randint(0, 50, (5,), generator=generator).tolist(),
                      "rejected": prompt + torch.randint(0, 50, (6,), generator=generator).tolist()})
    batch = preference_collate_fn(items, pad_token_id=0)
    loader = [batch]  # one fixed batch, seen every epoch

    loss0, chosen0, rejected0, acc0 = compute_dpo_loss_batch(batch, policy, reference, beta=0.1)
    assert loss0.item() == pytest.approx(math.log(2), abs=1e-6)  # policy == reference
    assert chosen0.item() == rejected0.item() == 0.0

    optimizer = torch.optim.AdamW(policy.parameters(), lr=5e-3)
    tracking = train_model_dpo_simple(policy, reference, loader, loader, optimizer, num_epochs=8, beta=0.1,
                                      eval_freq=1, eval_iter=1, verbose=False)
    margins = tracking["train_reward_margins"]
    assert len(margins) == 8
    assert margins[-1] > margins[0] + 0.05 and margins[-1] > 0
    assert tracking["train_losses"][-1] < math.log(2) - 0.02
    assert tracking["train_accuracies"][-1] == 1.0

    assert all(not p.requires_grad for p in reference.parameters())
    assert not reference.training
    for key, value in reference.state_dict().items():
        assert torch.equal(value, reference_before[key])


def test_notebook_definitions_agree_with_package():
    from pathlib import Path

    from notebook_defs import load_notebook_definitions

    nb = load_notebook_definitions(
        Path(__file__).parents[2] / "ch07/04_preference-tuning-with-dpo/dpo-from-scratch.ipynb")
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=generator)
    labels = torch.randint(0, 11, (3, 6), generator=generator)
    mask = torch.rand(3, 6, generator=generator) > 0.3
    mask[:, -1] = True
    torch.testing.assert_close(nb.compute_logprobs(logits, labels, mask), compute_logprobs(logits, labels, mask))
    torch.testing.assert_close(nb.compute_logprobs(logits, labels), compute_logprobs(logits, labels))
    args = [torch.randn(4, generator=generator) for _ in range(4)]
    for got, expected in zip(nb.compute_dpo_loss(*args, beta=0.3), compute_dpo_loss(*args, beta=0.3)):
        torch.testing.assert_close(got, expected)
