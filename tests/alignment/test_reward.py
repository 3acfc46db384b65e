"""The Bradley-Terry reward model: loss values, where the reward is read, padding invariance, training, resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from llms_from_scratch.alignment.reward import (
    RewardModel,
    bradley_terry_loss,
    evaluate_reward_model,
    pairwise_accuracy,
    precompute_trunk,
    reward_collate,
    set_trainable,
    split_preference_data,
    train_reward_model,
)
from llms_from_scratch.alignment.sequences import last_real_index, pad_sequences, to_right_padding
from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.models import build_model, get_config

pytestmark = pytest.mark.usefixtures("one_thread")

GPT_TINY = {"vocab_size": 50, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
            "qkv_bias": False}


def tiny_gpt(seed: int = 0) -> RewardModel:
    torch.manual_seed(seed)
    return RewardModel(GPTModel(GPT_TINY)).eval()


def tiny_zoo(seed: int = 0) -> RewardModel:
    torch.manual_seed(seed)
    cfg = get_config("smollm2-135m", n_layers=2, emb_dim=32, n_heads=4, n_kv_groups=2, head_dim=8, hidden_dim=48,
                     vocab_size=50, context_length=32)
    return RewardModel(build_model(cfg)).eval()


def softplus(x: float) -> float:  # -log sigmoid(-x), written out by hand
    return math.log(1 + math.exp(x))


def test_bradley_terry_loss_matches_hand_values():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    # differences +1 and -1: -log sigmoid(1) = log(1 + e^-1), -log sigmoid(-1) = log(1 + e)
    plain = (softplus(-1.0) + softplus(1.0)) / 2
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(plain, rel=1e-6)
    # a margin of 0.5 moves the differences to 0.5 and -1.5
    with_margin = (softplus(-0.5) + softplus(1.5)) / 2
    assert bradley_terry_loss(chosen, rejected, margin=0.5).item() == pytest.approx(with_margin, rel=1e-6)
    # centring adds 0.1 * mean((2 + 1)^2, (0 + 1)^2) = 0.1 * 5
    centred = bradley_terry_loss(chosen, rejected, margin=0.5, centering=0.1).item()
    assert centred == pytest.approx(with_margin + 0.5, rel=1e-6)
    # a per-pair margin tensor works too
    per_pair = bradley_terry_loss(chosen, rejected, margin=torch.tensor([0.0, 1.0])).item()
    assert per_pair == pytest.approx((softplus(-1.0) + softplus(2.0)) / 2, rel=1e-6)


def test_pairwise_accuracy_counts_ties_as_wrong():
    assert pairwise_accuracy(torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([0.0, 2.0, 1.0, 1.0])) == 0.5


def test_padding_helpers_find_the_last_real_token():
    ids, mask = pad_sequences([[1, 2, 3], [4]], pad_token_id=9, side="left")
    assert ids.tolist() == [[1, 2, 3], [9, 9, 4]]
    assert last_real_index(mask).tolist() == [2, 2]
    moved, moved_mask = to_right_padding(ids, mask)
    assert moved.tolist() == [[1, 2, 3], [4, 0, 0]] and moved_mask.tolist() == [[True] * 3, [True, False, False]]
    vectors = ids[..., None] * torch.tensor([1.0, -1.0])  # (batch, tokens, 2): one vector per token
    moved_vectors, _ = to_right_padding(vectors, mask)
    assert moved_vectors.tolist() == [[[1, -1], [2, -2], [3, -3]], [[4, -4], [0, 0], [0, 0]]]
    _, right_mask = pad_sequences([[1, 2, 3], [4]], pad_token_id=9, side="right")
    assert last_real_index(right_mask).tolist() == [2, 0]
    with pytest.raises(ValueError, match="no real token"):
        last_real_index(torch.tensor([[False, False]]))


@pytest.mark.parametrize("make", [tiny_gpt, tiny_zoo], ids=["GPTModel", "DecoderLM"])
def test_reward_is_read_at_the_last_real_token_whatever_the_padding(make):
    model = make()
    texts = [[3, 4, 5, 6, 7, 8], [10, 11, 12], [20]]
    with torch.no_grad():
        alone = torch.cat([model(torch.tensor([t])) for t in texts])  # no padding at all
        # by hand: the body's hidden state at the last token, through the final norm and the head
        h = model.body.final_norm(model.run_blocks(model.embed(torch.tensor([texts[0]]))))[0, -1]
        assert model.head(h).item() == pytest.approx(alone[0].item(), abs=1e-6)
        reference = model(*pad_sequences(texts, pad_token_id=0, side="right"))
        # a batch of other lengths may round differently in the last bit; padding side and pad id change nothing
        torch.testing.assert_close(reference, alone, rtol=1e-5, atol=1e-6)
        for side in ("left", "right"):
            for pad_id in (0, 1, 49):
                ids, mask = pad_sequences(texts, pad_token_id=pad_id, side=side)
                assert torch.equal(model(ids, mask), reference), (side, pad_id)
        # the last real token matters, the padding after it does not
        ids, mask = pad_sequences(texts, pad_token_id=0, side="right")
        edited = ids.clone()
        edited[1, 2] = 13
        assert model(edited, mask)[1] != reference[1]
        edited[2, 1:] = 13  # padding of the one-token row
        assert model(edited, mask)[2] == reference[2]


@pytest.mark.parametrize("make", [tiny_gpt, tiny_zoo], ids=["GPTModel", "DecoderLM"])
def test_stored_trunk_gives_the_same_rewards(make):
    model = make()
    data = [{"chosen": [1, 2, 3, 4], "rejected": [1, 2, 5]}, {"chosen": [7, 8], "rejected": [7, 9, 9, 9, 9]}]
    full = evaluate_reward_model(model, data, reward_collate)
    stored = precompute_trunk(model, data, start_block=1)
    from_trunk = evaluate_reward_model(model, stored, reward_collate)
    torch.testing.assert_close(torch.tensor(from_trunk["chosen_rewards"]), torch.tensor(full["chosen_rewards"]))
    torch.testing.assert_close(torch.tensor(from_trunk["rejected_rewards"]), torch.tensor(full["rejected_rewards"]))


def test_set_trainable_freezes_what_does_not_train():
    model = tiny_gpt()
    assert set_trainable(model, "head") == 2
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    assert set_trainable(model, "last_1") == 1
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("body.trf_blocks.1.") for n in names) and "body.final_norm.scale" in names
    assert not any(n.startswith("body.trf_blocks.0.") or n.startswith("body.tok_emb") for n in names)
    assert set_trainable(model, "all") == 0 and all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="last_N"):
        set_trainable(model, "last_3")


def toy_pairs(n: int, seed: int) -> list[dict]:
    """Random texts; the chosen one ends with token 5, the rejected one with token 7: a separable set."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n):
        prompt = torch.randint(10, 50, (int(torch.randint(2, 8, (1,), generator=g)),), generator=g).tolist()
        pairs.append({"chosen": prompt + [5], "rejected": prompt + [7]})
    return pairs


def test_a_few_steps_raise_pairwise_accuracy_on_a_separable_set():
    model = tiny_gpt(seed=1)
    train, held_out = toy_pairs(32, seed=0), toy_pairs(32, seed=1)
    before = evaluate_reward_model(model, held_out, reward_collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    history = train_reward_model(model, train, held_out, reward_collate, optimizer, num_epochs=3, batch_size=8,
                                 eval_freq=4, progress=False)
    after = evaluate_reward_model(model, held_out, reward_collate)
    assert after["accuracy"] == 1.0 > before["accuracy"]
    assert after["loss"] < before["loss"]
    assert history["step"] == [4, 8, 12] and history["val_accuracy"][-1] == 1.0


def test_split_is_fixed_by_the_seed():
    data = [{"i": i} for i in range(50)]
    train, held = split_preference_data(data, 0.2, seed=7)
    assert len(held) == 10 and sorted(d["i"] for d in train + held) == list(range(50))
    assert split_preference_data(data, 0.2, seed=7) == (train, held)
    assert split_preference_data(data, 0.2, seed=8)[1] != held


def test_cli_resume_equals_an_uninterrupted_run(tmp_path):
    from llms_from_scratch.cli import main

    words = ["fine", "good", "rude", "bad", "nice", "great"]
    data = [{"instruction": f"Say something {i}", "input": "", "output": "",
             "chosen": f"A {words[i % 3 * 2]} answer.", "rejected": f"A {words[i % 3 * 2 + 1]} answer, really."}
            for i in range(20)]
    data_path = tmp_path / "pairs.json"
    data_path.write_text(json.dumps(data))
    common = ["finetune-reward", "--model", "gpt-tiny", "--trainable", "all", "--data", str(data_path), "--epochs",
              "2", "--batch-size", "4", "--eval-freq", "3", "--checkpoint-every", "2", "--lr", "1e-3", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    assert main([*common, "--out", str(tmp_path / "parts"), "--stop-at-step", "5"]) == 0
    assert not (tmp_path / "parts" / "reward-model.pth").exists()
    assert main([*common, "--out", str(tmp_path / "parts"), "--resume"]) == 0
    whole = torch.load(tmp_path / "whole" / "reward-model.pth", weights_only=True)
    parts = torch.load(tmp_path / "parts" / "reward-model.pth", weights_only=True)
    assert whole.keys() == parts.keys()
    for name in whole:
        assert torch.equal(whole[name], parts[name]), name
    assert json.loads((tmp_path / "whole" / "history.json").read_text()) == json.loads(
        (tmp_path / "parts" / "history.json").read_text())
    assert (tmp_path / "parts" / "reward-training.png").stat().st_size > 0
    with pytest.raises(SystemExit):  # a finished folder is not started over by accident
        main([*common, "--out", str(tmp_path / "whole")])
