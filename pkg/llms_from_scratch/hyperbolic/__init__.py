"""Hierarchies embedded in hyperbolic space: WordNet's noun closure (:mod:`.wordnet`) and Poincaré-ball embeddings
trained with Riemannian SGD, with a squared-Euclidean baseline and the reconstruction metrics (:mod:`.poincare`)."""

from .poincare import (
    TrainConfig,
    poincare_distance,
    project_to_ball,
    rank_and_map,
    riemannian_gradient,
    squared_euclidean_distance,
    train_embeddings,
)
from .wordnet import MAMMAL_OFFSET, Synset, closure_edges, read_data_noun, subtree_closure

__all__ = [
    "MAMMAL_OFFSET",
    "Synset",
    "TrainConfig",
    "closure_edges",
    "poincare_distance",
    "project_to_ball",
    "rank_and_map",
    "read_data_noun",
    "riemannian_gradient",
    "squared_euclidean_distance",
    "subtree_closure",
    "train_embeddings",
]
