"""A concept-level model: a causal transformer that reads sentence embeddings and predicts the next one.

The "concepts" are frozen MiniLM sentence embeddings (:mod:`.embed`); reviews are split into sentences by
:mod:`.sentences`; :mod:`.model` is the small transformer built from chapter 4's blocks; :mod:`.losses` holds the
two objectives (MSE and InfoNCE over in-batch negatives); :mod:`.evaluate` decodes by retrieval among real
sentences and computes the two baselines, "copy the previous sentence" and "mean of the context".
"""

from .embed import cached_sentence_embeddings, embed_sentences, load_sentence_encoder
from .evaluate import (
    context_mean,
    copy_previous,
    next_sentence_items,
    retrieval_accuracy,
    retrieval_hits,
    sample_candidates,
)
from .losses import info_nce_loss, masked_mse_loss
from .model import ConceptConfig, ConceptModel, pad_reviews
from .sentences import load_reviews, split_sentences
from .training import concept_loss, train_concept_model

__all__ = [
    "ConceptConfig",
    "ConceptModel",
    "cached_sentence_embeddings",
    "concept_loss",
    "context_mean",
    "copy_previous",
    "embed_sentences",
    "info_nce_loss",
    "load_reviews",
    "load_sentence_encoder",
    "masked_mse_loss",
    "next_sentence_items",
    "pad_reviews",
    "retrieval_accuracy",
    "retrieval_hits",
    "sample_candidates",
    "split_sentences",
    "train_concept_model",
]
