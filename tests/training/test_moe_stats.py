"""MoE balancing: the load-balancing loss, the routing statistics and the bias step, against values worked out by hand.

The router probabilities are chosen so every quantity can be computed on paper; the logits are their logarithms
plus a different constant per row, which a softmax removes (so a second softmax would show).
"""

from __future__ import annotations

import math

import pytest
import torch

from llms_from_scratch.nn.moe import MoEConfig, MoEFeedForward, load_balancing_loss
from llms_from_scratch.training.moe_gpt import aux_loss, build_gpt, update_correction_bias
from llms_from_scratch.training.moe_stats import (
    coefficient_of_variation,
    expert_counts,
    layer_expert_counts,
    max_share,
    router_z_loss,
)

# two tokens that both pick experts 0 and 1 under top-2, and a third that picks 3 and 2
PROBS = torch.tensor([[0.4, 0.3, 0.2, 0.1],
                      [0.5, 0.3, 0.1, 0.1],
                      [0.05, 0.1, 0.15, 0.7]])
LOGITS = PROBS.log() + torch.tensor([[0.0], [3.0], [-2.0]])  # a per-row shift leaves the softmax unchanged
TOP2 = MoEConfig(n_experts=4, n_experts_per_tok=2, hidden_dim=8)


def test_load_balancing_loss_matches_the_hand_computed_value():
    # first two tokens: f = top-2 choices per token = (2, 2, 0, 0) / 2, P = mean probabilities = (.45, .3, .15, .1)
    # loss = 4 * (1 * .45 + 1 * .3) = 3.0
    assert load_balancing_loss([LOGITS[:2]], 4, 2).item() == pytest.approx(3.0)
    # top-1: only expert 0 is chosen, f = (1, 0, 0, 0): loss = 4 * .45
    assert load_balancing_loss([LOGITS[:2]], 4, 1).item() == pytest.approx(1.8)
    # all three tokens: f = (2, 2, 1, 1) / 3, P = (.95, .7, .45, .9) / 3, loss = 4/9 * (1.9 + 1.4 + .45 + .9)
    assert load_balancing_loss([LOGITS], 4, 2).item() == pytest.approx(4 / 9 * 4.65)


def test_load_balancing_loss_is_top_k_for_an_even_spread_and_applies_one_softmax():
    even = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]]).log()
    assert load_balancing_loss([even], 4, 2).item() == pytest.approx(2.0)
    # taking the softmax first and passing probabilities as logits would give another value: one softmax only
    twice = load_balancing_loss([LOGITS[:2].softmax(dim=-1)], 4, 2).item()
    assert twice != pytest.approx(3.0, abs=1e-3)


def test_padding_is_left_out_of_the_load_balancing_loss():
    mask = torch.tensor([[1, 1, 0]])  # (batch, tokens): the third token is padding
    assert load_balancing_loss([LOGITS], 4, 2, attention_mask=mask).item() == pytest.approx(3.0)


def test_several_layers_pool_their_tokens():
    pooled = load_balancing_loss([LOGITS], 4, 2)
    assert load_balancing_loss([LOGITS[:1], LOGITS[1:]], 4, 2).item() == pytest.approx(pooled.item())


def test_expert_counts_follow_the_routing_and_skip_padding():
    assert expert_counts(LOGITS, TOP2).tolist() == [2.0, 2.0, 1.0, 1.0]
    assert expert_counts(LOGITS, TOP2, attention_mask=torch.tensor([[1, 1, 0]])).tolist() == [2.0, 2.0, 0.0, 0.0]
    top1 = MoEConfig(n_experts=4, n_experts_per_tok=1, hidden_dim=8)
    assert expert_counts(LOGITS, top1).tolist() == [2.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="attention_mask covers 2 tokens"):
        expert_counts(LOGITS, TOP2, attention_mask=torch.ones(1, 2))


def test_expert_counts_see_the_correction_bias_of_a_sigmoid_router():
    cfg = MoEConfig(n_experts=4, n_experts_per_tok=1, hidden_dim=8, scoring="sigmoid", correction_bias=True)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]] * 3)
    assert expert_counts(logits, cfg).tolist() == [3.0, 0.0, 0.0, 0.0]
    assert expert_counts(logits, cfg, torch.tensor([0.0, 0.0, 0.0, 2.0])).tolist() == [0.0, 0.0, 0.0, 3.0]


def test_max_share_and_coefficient_of_variation():
    collapsed, even = torch.tensor([2.0, 2.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 1.0, 1.0])
    # every token visits experts 0 and 1: the busiest expert sees all tokens; an even spread gives top_k / n_experts
    assert max_share(collapsed, 2).item() == pytest.approx(1.0)
    assert max_share(even, 2).item() == pytest.approx(0.5)
    assert max_share(torch.tensor([3.0, 1.0, 0.0, 0.0]), 1).item() == pytest.approx(0.75)
    # mean 1, population standard deviation 1; sqrt(n_experts / top_k - 1) = 1 for total collapse onto 2 of 4
    assert coefficient_of_variation(collapsed).item() == pytest.approx(1.0)
    assert coefficient_of_variation(even).item() == 0.0
    rows = torch.stack([collapsed, even])  # one value per row
    assert max_share(rows, 2).tolist() == pytest.approx([1.0, 0.5])


def test_router_z_loss_is_the_mean_squared_logsumexp():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # logsumexp: log 2 and log 4
    expected = (math.log(2) ** 2 + math.log(4) ** 2) / 2
    assert router_z_loss([logits]).item() == pytest.approx(expected)
    assert router_z_loss([logits[:1], logits[1:]]).item() == pytest.approx(expected)  # pooled over layers
    assert router_z_loss([logits], attention_mask=torch.tensor([[1, 0]])).item() == pytest.approx(math.log(2) ** 2)
    with pytest.raises(ValueError, match="no router logits"):
        router_z_loss([])


def test_update_correction_bias_moves_each_expert_towards_the_mean_load():
    layer = MoEFeedForward(8, MoEConfig(n_experts=4, n_experts_per_tok=1, hidden_dim=8, scoring="sigmoid",
                                        correction_bias=True))
    update_correction_bias(layer, torch.tensor([[3.0, 1.0, 2.0, 2.0]]), rate=0.01)
    assert layer.correction_bias.tolist() == pytest.approx([-0.01, 0.01, 0.0, 0.0])
    with pytest.raises(ValueError, match="expected \\(layers, n_experts\\) = \\(1, 4\\)"):
        update_correction_bias(layer, torch.ones(2, 4), rate=0.01)
    with pytest.raises(ValueError, match="moe_balance 'bias'"):
        update_correction_bias(MoEFeedForward(8, TOP2), torch.ones(1, 4), rate=0.01)


CFG = {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": False}


def test_build_gpt_swaps_in_moe_blocks_and_aux_loss_follows_the_balance():
    assert not any(isinstance(m, MoEFeedForward) for m in build_gpt(CFG).modules())
    moe_cfg = {**CFG, "moe_experts": 4, "moe_top_k": 2, "moe_balance": "aux", "moe_aux_weight": 0.5}
    model = build_gpt(moe_cfg)
    layers = [m for m in model.modules() if isinstance(m, MoEFeedForward)]
    assert len(layers) == 2 and layers[0].cfg.hidden_dim == round(8 * 16 / 6) and layers[0].cfg.scoring == "softmax"
    with pytest.raises(ValueError, match="run a forward pass"):
        layer_expert_counts(model)
    x = torch.randint(0, 50, (2, 8))
    assert model(x).shape == (2, 8, 50)
    counts = layer_expert_counts(model)
    assert counts.shape == (2, 4) and counts.sum(dim=1).tolist() == [32.0, 32.0]  # 16 tokens x top-2 per layer
    expected = 0.5 * load_balancing_loss([m.router_logits for m in layers], 4, 2)
    assert aux_loss(model, moe_cfg).item() == pytest.approx(expected.item())
    assert aux_loss(model, {**moe_cfg, "moe_balance": "none"}) is None

    bias = build_gpt({**CFG, "moe_experts": 4, "moe_balance": "bias"})
    bias_layer = next(m for m in bias.modules() if isinstance(m, MoEFeedForward))
    assert bias_layer.cfg.scoring == "sigmoid" and bias_layer.correction_bias is not None
    with pytest.raises(ValueError, match="moe_balance must be one of none, aux, bias"):
        build_gpt({**CFG, "moe_experts": 4, "moe_balance": "loss"})
