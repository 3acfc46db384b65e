"""Mixture-of-experts routing: grouped sigmoid routing with a selection-only correction bias, and the
auxiliary load-balancing loss against `transformers`."""

from __future__ import annotations

import pytest
import torch
from zoo_reference import random_model

from llms_from_scratch.models import get_config
from llms_from_scratch.nn import MoEConfig, load_balancing_loss
from llms_from_scratch.nn.moe import collect_router_logits, route

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(vocab_size=256, emb_dim=32, n_layers=2, hidden_dim=48, context_length=256)


def test_sigmoid_routing_keeps_groups_and_weights_from_unbiased_scores():
    cfg = MoEConfig(n_experts=8, n_experts_per_tok=2, hidden_dim=4, scoring="sigmoid", n_groups=4, topk_groups=2,
                    routed_scaling=2.5, correction_bias=True)
    logits = torch.randn(50, 8, generator=torch.Generator().manual_seed(3))
    bias = torch.tensor([3.0, 0, 0, 0, 0, 0, 0, 0])  # expert 0 always wins the selection
    weights, ids = route(logits, cfg, bias)
    assert (ids == 0).any(dim=-1).all()
    scores = logits.sigmoid()
    chosen = scores.gather(1, ids)
    torch.testing.assert_close(weights, 2.5 * chosen / chosen.sum(dim=-1, keepdim=True))
    # every pick lies in one of the 2 best groups (rated by the sum of their 2 best biased scores)
    group_score = (scores + bias).view(50, 4, 2).sum(dim=-1)
    kept = group_score.topk(2, dim=-1).indices
    assert all(set((ids[i] // 2).tolist()) <= set(kept[i].tolist()) for i in range(50))


def test_load_balancing_loss_matches_transformers():
    transformers = pytest.importorskip("transformers")
    from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

    cfg = get_config("qwen3-30b-a3b", **SMALL, n_heads=4, n_kv_groups=2, head_dim=8,
                     moe=MoEConfig(n_experts=6, n_experts_per_tok=2, hidden_dim=16))
    model = random_model(cfg).train()
    ids = torch.randint(0, cfg.vocab_size, (2, 9), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    model(ids, mask)
    logits = collect_router_logits(model)
    assert len(logits) == cfg.n_layers
    for m in (None, mask):
        ours = load_balancing_loss(logits, 6, 2, attention_mask=m)
        torch.testing.assert_close(ours, load_balancing_loss_func(tuple(logits), 6, 2, attention_mask=m))
    ours.backward()  # the loss trains the routers
    assert model.trf_blocks[0].ff.gate.weight.grad.abs().sum() > 0
    assert transformers is not None
