"""Byte latent patches (BLT-style): a byte model's next-byte entropy decides where patches start, and a
transformer runs over patches instead of bytes.

:mod:`.entropy` scores every byte of a stream with a byte-level GPT (context reset at newlines);
:mod:`.patching` turns entropies into patch starts (threshold tuned to a target mean patch length) or cuts fixed
patches; :mod:`.model` holds :class:`ByteLatentTransformer` (local encoder -> latent transformer -> local
decoder); :mod:`.flops` counts its training FLOPs; :mod:`.training` trains any of these models to a FLOP budget
and scores them in bits per byte.
"""

from .entropy import next_byte_entropies
from .flops import blt_forward_flops, blt_training_flops
from .model import BLTConfig, ByteLatentTransformer
from .patching import entropy_patch_starts, fixed_patch_starts, patch_ids, patch_lengths, tune_threshold
from .training import (
    Batch,
    TrainLog,
    bits_per_byte,
    blt_batches,
    gpt_batches,
    lr_at,
    stream_windows,
    train_to_budget,
)

__all__ = [
    "BLTConfig",
    "Batch",
    "ByteLatentTransformer",
    "TrainLog",
    "bits_per_byte",
    "blt_batches",
    "blt_forward_flops",
    "blt_training_flops",
    "entropy_patch_starts",
    "fixed_patch_starts",
    "gpt_batches",
    "lr_at",
    "next_byte_entropies",
    "patch_ids",
    "patch_lengths",
    "stream_windows",
    "train_to_budget",
    "tune_threshold",
]
