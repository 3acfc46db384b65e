"""The pieces the noun-closure script adds to the Poincaré trainer (issue 20): a sampled evaluation that scores only
chosen nodes against all others, a per-epoch progress callback, and negatives found by binary search in the sorted
edge keys."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.hyperbolic.poincare import NegativeSampler, TrainConfig, rank_and_map, train_embeddings

F64 = torch.float64


def tree_closure(branching: int, depth: int) -> tuple[int, list[tuple[int, int]]]:
    """A balanced tree's closure: node ids in breadth-first order, (descendant, ancestor) for every ancestor."""
    parents: list[int | None] = [None]
    frontier = [0]
    for _ in range(depth):
        frontier = [_add(parents, node) for node in frontier for _ in range(branching)]
    edges = []
    for node in range(len(parents)):
        up = parents[node]
        while up is not None:
            edges.append((node, up))
            up = parents[up]
    return len(parents), edges


def _add(parents: list[int | None], parent: int) -> int:
    parents.append(parent)
    return len(parents) - 1


def test_scoring_chosen_heads_averages_only_their_pairs():
    # 1-D layout: from 0 the order is 1, 3, 2, 4; node 0's neighbours are 1 and 2, node 3's neighbour is 4
    weights = torch.tensor([[0.0], [0.1], [0.3], [0.2], [0.4]], dtype=F64)
    edges = [(0, 1), (0, 2), (3, 4)]
    # from 3 (at 0.2): 4 is 0.2 away, 1 and 2 are 0.1 away (closer), 0 ties (not closer): rank 3, precision 1/3
    assert rank_and_map(weights, edges, "euclidean", heads=[3]) == pytest.approx((3.0, 1 / 3))
    assert rank_and_map(weights, edges, "euclidean", heads=[0]) == pytest.approx((1.5, (1 + 2 / 3) / 2))
    full = rank_and_map(weights, edges, "euclidean")
    assert rank_and_map(weights, edges, "euclidean", heads=torch.arange(5)) == pytest.approx(full)
    assert full == pytest.approx(((1 + 2 + 3) / 3, ((1 + 2 / 3) / 2 + 1 / 3) / 2))
    with pytest.raises(ValueError, match="none of the scored nodes has a neighbour"):
        rank_and_map(weights, edges, "euclidean", heads=[1, 2, 4])


def test_on_epoch_reports_every_epoch_and_leaves_the_result_unchanged(one_thread):
    n_nodes, edges = tree_closure(branching=2, depth=3)
    config = TrainConfig(dim=3, epochs=4, burn_in=1, negatives=4, batch_size=8, seed=1)
    seen: list[tuple[int, float]] = []
    weights, losses = train_embeddings(n_nodes, edges, config, on_epoch=lambda e, loss: seen.append((e, loss)))
    assert seen == list(enumerate(losses))
    again, _ = train_embeddings(n_nodes, edges, config)
    assert torch.equal(weights, again)


def test_negatives_avoid_every_edge_of_a_random_closure():
    n_nodes, edges = tree_closure(branching=3, depth=4)  # 121 nodes, a root related to nothing as head
    edge_tensor = torch.tensor(edges)
    sampler = NegativeSampler(n_nodes, edge_tensor, torch.Generator().manual_seed(0))
    heads = edge_tensor[:, 0]
    draws = sampler.sample(heads, 30)  # (len(edges), 30)
    related = {(u, v) for u, v in edges}
    assert not any((u, t) in related or u == t for u, row in zip(heads.tolist(), draws.tolist()) for t in row)
    # a draw equal to the largest edge key must be caught at the end of the sorted keys, too
    last_u, last_v = max(edges, key=lambda e: e[0] * n_nodes + e[1])
    assert sampler._bad(torch.tensor([last_u]), torch.tensor([[last_v]])).item()
    no_edges = NegativeSampler(4, torch.empty(0, 2, dtype=torch.long), torch.Generator().manual_seed(0))
    assert (no_edges.sample(torch.tensor([2, 2]), 5) != 2).all()
