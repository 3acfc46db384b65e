"""Poincaré-ball embeddings of a hierarchy (Nickel & Kiela, 2017), and the same training in Euclidean space.

Every node gets a point inside the unit ball. The distance

    d(u, v) = arcosh(1 + 2 |u - v|² / ((1 - |u|²) (1 - |v|²)))

grows without bound near the boundary, so a tree fits with general concepts near the origin and their many
descendants spread out towards the rim, in as few as two dimensions.

Training uses the paper's ranking loss: for a true edge (u, v) and negatives v' drawn among the nodes u is *not*
related to, ``-log(exp(-d(u, v)) / sum over {v} ∪ negatives of exp(-d(u, v')))``, a softmax cross-entropy whose
target is the true neighbour. The update is Riemannian SGD: the Euclidean gradient is rescaled by the inverse of
the ball's metric, ``(1 - |x|²)² / 4``, and the point is projected back just inside the ball. The first epochs
("burn-in") use a smaller learning rate, so that the initial angular layout settles before points move outwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

BALL_EPS = 1e-5  # points are kept at norm <= 1 - BALL_EPS, where the distance's denominators stay representable


def poincare_distance(u: torch.Tensor, v: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Distance in the Poincaré ball between ``u`` and ``v`` (broadcast over the leading dimensions)."""
    sq_u = (u * u).sum(-1)
    sq_v = (v * v).sum(-1)
    sq_diff = ((u - v) ** 2).sum(-1)
    x = 1 + 2 * sq_diff / ((1 - sq_u).clamp_min(eps) * (1 - sq_v).clamp_min(eps))
    # arcosh(x) = log(x + sqrt(x² - 1)); the clamp keeps the gradient finite at u == v, where x == 1
    return torch.log(x + torch.sqrt((x * x - 1).clamp_min(eps)))


def squared_euclidean_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The Euclidean baseline's dissimilarity, ``|u - v|²``."""
    return ((u - v) ** 2).sum(-1)


def riemannian_gradient(x: torch.Tensor, euclidean_grad: torch.Tensor) -> torch.Tensor:
    """The ball's Riemannian gradient: the Euclidean gradient times the inverse metric ``(1 - |x|²)² / 4``."""
    scale = (1 - (x * x).sum(-1, keepdim=True)) ** 2 / 4
    return scale * euclidean_grad


def project_to_ball(x: torch.Tensor, eps: float = BALL_EPS) -> torch.Tensor:
    """Pull every row of ``x`` with norm above ``1 - eps`` back onto that radius; other rows are unchanged."""
    norm = x.norm(dim=-1, keepdim=True)
    limit = 1 - eps
    return torch.where(norm > limit, x / norm.clamp_min(1e-15) * limit, x)


def ranking_loss(distance: torch.Tensor) -> torch.Tensor:
    """The mean ranking loss; ``distance`` is (batch, 1 + negatives) with the true neighbour in column 0."""
    return torch.nn.functional.cross_entropy(-distance, torch.zeros(len(distance), dtype=torch.long))


@dataclass
class TrainConfig:
    """What :func:`train_embeddings` needs beyond the edges; defaults follow the reference implementation."""

    dim: int = 5
    epochs: int = 300
    lr: float = 1.0
    burn_in: int = 10  # epochs at lr * burn_in_factor
    burn_in_factor: float = 0.1
    negatives: int = 50
    batch_size: int = 50
    init_scale: float = 1e-3  # initial points uniform in [-init_scale, init_scale]^dim
    manifold: str = "poincare"  # or "euclidean": squared Euclidean distance and plain SGD
    seed: int = 0


class NegativeSampler:
    """Draws, for each edge (u, v), nodes t that are neither u nor a neighbour of u ((u, t) is no edge).

    As in the reference implementation, neighbours are directed: for a closure of (child, ancestor) pairs, a
    child's ancestors are never its negatives, its descendants can be (they are not what it should be closest to).
    """

    def __init__(self, n_nodes: int, edges: torch.Tensor, generator: torch.Generator):
        self.n_nodes = n_nodes
        self.generator = generator
        self._related = (edges[:, 0] * n_nodes + edges[:, 1]).unique()  # sorted keys u * n + t of the edges

    def sample(self, heads: torch.Tensor, count: int) -> torch.Tensor:
        """(len(heads), count) node ids, none related to its row's head; rejected draws are redrawn."""
        out = torch.randint(self.n_nodes, (len(heads), count), generator=self.generator)
        for _ in range(100):  # a redraw succeeds with high probability unless a head is related to most nodes
            bad = self._bad(heads, out)
            if not bad.any():
                return out
            out[bad] = torch.randint(self.n_nodes, (int(bad.sum()),), generator=self.generator)
        raise ValueError("could not draw negatives: some node is related to nearly every other node; "
                         "use fewer negatives")

    def _bad(self, heads: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        keys = heads[:, None] * self.n_nodes + draws  # (batch, count)
        if len(self._related) == 0:
            return draws == heads[:, None]
        # binary search in the sorted edge keys: torch.isin re-sorts all of them on every call, which dominates an
        # epoch when the closure has hundreds of thousands of edges
        at = torch.searchsorted(self._related, keys).clamp_max(len(self._related) - 1)
        return (draws == heads[:, None]) | (self._related[at] == keys)


def train_embeddings(n_nodes: int, edges: Sequence[tuple[int, int]] | torch.Tensor, config: TrainConfig,
                     on_epoch: Callable[[int, float], None] | None = None) -> tuple[torch.Tensor, list[float]]:
    """Embed ``n_nodes`` nodes so that ``edges`` (pairs of node ids) are closer than unrelated pairs.

    ``on_epoch(epoch, mean_loss)``, if given, is called after every epoch (epochs count from 0), e.g. to show
    progress on a long run. Returns the (n_nodes, dim) embedding and the mean loss of every epoch.
    """
    if config.manifold not in ("poincare", "euclidean"):
        raise ValueError(f"manifold must be 'poincare' or 'euclidean', got {config.manifold!r}")
    poincare = config.manifold == "poincare"
    distance = poincare_distance if poincare else squared_euclidean_distance
    edges = torch.as_tensor(edges, dtype=torch.long).reshape(-1, 2)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = NegativeSampler(n_nodes, edges, generator)
    weights = (torch.rand(n_nodes, config.dim, generator=generator, dtype=torch.float64) * 2 - 1) * config.init_scale

    losses = []
    for epoch in range(config.epochs):
        lr = config.lr * (config.burn_in_factor if epoch < config.burn_in else 1.0)
        order = torch.randperm(len(edges), generator=generator)
        total = 0.0
        for start in range(0, len(edges), config.batch_size):
            batch = edges[order[start:start + config.batch_size]]
            heads = batch[:, 0]
            tails = torch.cat([batch[:, 1:], sampler.sample(heads, config.negatives)], dim=1)  # (b, 1 + negatives)
            ids = torch.cat([heads[:, None], tails], dim=1).reshape(-1)  # (b * (2 + negatives),)
            unique, inverse = ids.unique(return_inverse=True)
            points = weights[unique].clone().requires_grad_(True)
            gathered = points[inverse].reshape(len(batch), -1, config.dim)  # (b, 2 + negatives, dim)
            loss = ranking_loss(distance(gathered[:, :1], gathered[:, 1:]))
            (grad,) = torch.autograd.grad(loss, points)
            with torch.no_grad():
                step = riemannian_gradient(points, grad) if poincare else grad
                moved = points - lr * step
                weights[unique] = project_to_ball(moved) if poincare else moved
            total += loss.item() * len(batch)
        losses.append(total / len(edges))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return weights, losses


def rank_and_map(weights: torch.Tensor, edges: Sequence[tuple[int, int]] | torch.Tensor, manifold: str = "poincare",
                 *, directed: bool = True, heads: Sequence[int] | torch.Tensor | None = None) -> tuple[float, float]:
    """Mean rank and mean average precision of the reconstruction of ``edges``.

    Convention (the reference implementation's): the neighbours N(u) of a node u are the v with (u, v) an edge
    (for a closure, u's ancestors; ``directed=False`` adds u's descendants). Each true neighbour v is ranked by
    distance from u among v itself and all non-neighbours of u, u excluded (other neighbours do not count against
    it), so a perfect embedding has rank 1. The mean rank averages over all (u, v) pairs; MAP averages, over the
    nodes u with neighbours, the average precision of ranking N(u) above everything else.

    ``heads`` restricts the nodes u that are scored (each still ranked against all nodes), for a sampled
    evaluation of a graph too large to score every node; by default every node with neighbours is scored.
    """
    distance = poincare_distance if manifold == "poincare" else squared_euclidean_distance
    edges = torch.as_tensor(edges, dtype=torch.long).reshape(-1, 2)
    n = len(weights)
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for u, v in edges.tolist():
        neighbours[u].add(v)
        if not directed:
            neighbours[v].add(u)
    ranks: list[int] = []
    precisions: list[float] = []
    scored = range(n) if heads is None else torch.as_tensor(heads, dtype=torch.long).reshape(-1).tolist()
    for u in scored:
        if not neighbours[u]:
            continue
        d = distance(weights[u][None], weights)  # (n,)
        d[u] = float("inf")  # a node is not ranked against itself
        true = torch.tensor(sorted(neighbours[u]))
        is_true = torch.zeros(n, dtype=torch.bool)
        is_true[true] = True
        d_false = torch.sort(d[~is_true]).values
        # rank of v among the non-neighbours: 1 + how many non-neighbours are strictly closer
        rank = 1 + torch.searchsorted(d_false, d[true], side="left")  # (len(true),)
        ranks += rank.tolist()
        # average precision: the k-th closest true neighbour has k true and (rank - 1) false ones before/at it
        position = torch.sort(rank).values + torch.arange(len(true))  # its position in the full ranking
        precision = torch.arange(1, len(true) + 1) / position
        precisions.append(precision.mean().item())
    if not ranks:
        raise ValueError("none of the scored nodes has a neighbour; pass heads that appear first in some edge")
    return sum(ranks) / len(ranks), sum(precisions) / len(precisions)
