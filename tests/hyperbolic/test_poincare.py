"""Poincaré embeddings (issue 20): the distance and the Riemannian gradient against values worked out by hand and
against geoopt, the projection keeps points inside the ball, negatives never include a true neighbour, the
evaluation's ranks on a layout chosen by hand, and a short training run reconstructs a small tree."""

from __future__ import annotations

import math

import pytest
import torch

from llms_from_scratch.hyperbolic.poincare import (
    NegativeSampler,
    TrainConfig,
    poincare_distance,
    project_to_ball,
    rank_and_map,
    riemannian_gradient,
    squared_euclidean_distance,
    train_embeddings,
)

F64 = torch.float64


def test_distance_matches_hand_computed_values():
    origin = torch.zeros(2, dtype=F64)
    half = torch.tensor([0.5, 0.0], dtype=F64)
    # d(0, x) = 2 artanh |x|; at |x| = 1/2: arcosh(1 + 2 * (1/4) / (3/4)) = arcosh(5/3) = log 3
    assert poincare_distance(origin, half).item() == pytest.approx(math.log(3), abs=1e-12)
    u, v = torch.tensor([0.3, 0.4], dtype=F64), torch.tensor([-0.5, 0.1], dtype=F64)
    # |u|² = 0.25, |v|² = 0.26, |u - v|² = 0.73: arcosh(1 + 1.46 / (0.75 * 0.74))
    assert poincare_distance(u, v).item() == pytest.approx(math.acosh(1 + 1.46 / 0.555), abs=1e-9)
    assert poincare_distance(u, v).item() == pytest.approx(poincare_distance(v, u).item(), abs=1e-12)
    assert squared_euclidean_distance(u, v).item() == pytest.approx(0.73, abs=1e-12)


def test_riemannian_gradient_of_the_distance_has_unit_length_in_the_metric():
    point = torch.tensor([0.5, 0.0], dtype=F64, requires_grad=True)
    poincare_distance(torch.zeros(2, dtype=F64), point).backward()
    # d/dr 2 artanh(r) = 2 / (1 - r²) = 8/3 along the radius
    assert point.grad.tolist() == pytest.approx([8 / 3, 0.0], abs=1e-6)
    rgrad = riemannian_gradient(point.detach(), point.grad)
    assert rgrad.tolist() == pytest.approx([(0.75 ** 2 / 4) * 8 / 3, 0.0], abs=1e-6)  # = 0.375
    conformal = 2 / (1 - 0.25)  # the metric scales Euclidean lengths by 2 / (1 - |x|²)
    assert (conformal * rgrad.norm()).item() == pytest.approx(1.0, abs=1e-6)


def test_distance_and_gradient_agree_with_geoopt():
    geoopt = pytest.importorskip("geoopt")
    ball = geoopt.PoincareBall()
    generator = torch.Generator().manual_seed(0)
    u = project_to_ball(torch.randn(20, 5, generator=generator, dtype=F64) * 0.4, eps=1e-3)
    v = project_to_ball(torch.randn(20, 5, generator=generator, dtype=F64) * 0.4, eps=1e-3)
    torch.testing.assert_close(poincare_distance(u, v), ball.dist(u, v), rtol=1e-6, atol=1e-8)
    egrad = torch.randn(20, 5, generator=generator, dtype=F64)
    torch.testing.assert_close(riemannian_gradient(u, egrad), ball.egrad2rgrad(u, egrad), rtol=1e-10, atol=1e-12)


def test_projection_keeps_points_strictly_inside_the_ball():
    points = torch.tensor([[3.0, 4.0], [0.1, 0.2], [0.0, 1.0], [0.0, 0.0]], dtype=F64)
    projected = project_to_ball(points, eps=1e-5)
    norms = projected.norm(dim=-1)
    assert (norms <= 1 - 1e-5 + 1e-12).all()
    torch.testing.assert_close(projected[0], torch.tensor([0.6, 0.8], dtype=F64) * (1 - 1e-5))  # direction kept
    torch.testing.assert_close(projected[1:], points[1:].where(points[1:].norm(dim=-1, keepdim=True) < 1,
                                                               projected[1:]))  # inside points are unchanged
    assert torch.isfinite(poincare_distance(projected[0], projected[2]))


def test_negatives_are_never_the_head_or_one_of_its_neighbours():
    edges = torch.tensor([[0, 1], [0, 2], [0, 3], [4, 1]])
    sampler = NegativeSampler(6, edges, torch.Generator().manual_seed(0))
    draws = sampler.sample(torch.tensor([0] * 50 + [4] * 50), 20)  # node 0 may only get 4 and 5
    assert set(draws[:50].unique().tolist()) == {4, 5}
    assert set(draws[50:].unique().tolist()) <= {0, 2, 3, 5} and 1 not in draws[50:]
    with pytest.raises(ValueError, match="could not draw negatives"):
        NegativeSampler(3, torch.tensor([[0, 1], [0, 2]]), torch.Generator()).sample(torch.tensor([0]), 1)


def test_rank_and_map_on_a_layout_chosen_by_hand():
    # node 0's neighbours are 1 and 2; in one dimension the order from 0 is 1, 3, 2, 4 (3 and 4 unrelated)
    weights = torch.tensor([[0.0], [0.1], [0.3], [0.2], [0.4]], dtype=F64)
    rank, average_precision = rank_and_map(weights, [(0, 1), (0, 2)], manifold="euclidean")
    assert rank == pytest.approx((1 + 2) / 2)  # 2 has one non-neighbour (3) closer
    assert average_precision == pytest.approx((1 / 1 + 2 / 3) / 2)
    # undirected: 1 and 2 also have 0 as their neighbour. From 1, node 3 ties with 0 (a tie is not "closer"):
    # rank 1; from 2, the non-neighbours 3, 4 and 1 are all closer than 0: rank 4
    rank, _ = rank_and_map(weights, [(0, 1), (0, 2)], manifold="euclidean", directed=False)
    assert rank == pytest.approx((1 + 2 + 1 + 4) / 4)


def balanced_tree_closure(branching: int, depth: int) -> tuple[int, list[tuple[int, int]]]:
    """Node ids in breadth-first order; edges (descendant, ancestor) for every ancestor."""
    parent = {0: None}
    frontier, next_id = [0], 1
    for _ in range(depth):
        new = []
        for node in frontier:
            for _ in range(branching):
                parent[next_id] = node
                new.append(next_id)
                next_id += 1
        frontier = new
    edges = []
    for node in parent:
        up = parent[node]
        while up is not None:
            edges.append((node, up))
            up = parent[up]
    return next_id, edges


def test_training_reconstructs_a_small_tree(one_thread):
    n_nodes, edges = balanced_tree_closure(branching=3, depth=3)
    assert (n_nodes, len(edges)) == (40, 3 * 1 + 9 * 2 + 27 * 3)
    config = TrainConfig(dim=5, epochs=100, lr=1.0, burn_in=5, negatives=10, batch_size=10, seed=0)
    weights, losses = train_embeddings(n_nodes, edges, config)
    assert (weights.norm(dim=-1) < 1).all()
    assert losses[-1] < 0.5 * losses[0]
    rank, average_precision = rank_and_map(weights, edges)
    assert average_precision > 0.98 and rank < 1.05


def test_the_euclidean_baseline_trains_with_the_same_loop(one_thread):
    n_nodes, edges = balanced_tree_closure(branching=2, depth=2)
    config = TrainConfig(dim=2, epochs=20, negatives=3, batch_size=4, manifold="euclidean", seed=0)
    weights, losses = train_embeddings(n_nodes, edges, config)
    assert weights.shape == (7, 2) and losses[-1] < losses[0]
    with pytest.raises(ValueError, match="manifold must be"):
        train_embeddings(n_nodes, edges, TrainConfig(manifold="sphere"))
