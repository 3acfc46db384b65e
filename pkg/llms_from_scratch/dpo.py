"""DPO moved to :mod:`llms_from_scratch.alignment.dpo`; this module keeps ``llms_from_scratch.dpo`` imports working."""

from .alignment.dpo import (
    PreferenceDataset,
    compute_dpo_loss,
    compute_dpo_loss_batch,
    compute_dpo_loss_loader,
    compute_logprobs,
    evaluate_dpo_loss_loader,
    freeze,
    preference_collate_fn,
    train_model_dpo_simple,
)

__all__ = [
    "PreferenceDataset",
    "compute_dpo_loss",
    "compute_dpo_loss_batch",
    "compute_dpo_loss_loader",
    "compute_logprobs",
    "evaluate_dpo_loss_loader",
    "freeze",
    "preference_collate_fn",
    "train_model_dpo_simple",
]
