"""``serve --checkpoint``: the book's own checkpoints, told apart by what they hold. Not a command itself.

* ``checkpoint.pth`` from ``llms-from-scratch pretrain`` (chapter 5): a base model, loaded by ``generate``'s loader;
* ``classifier.safetensors`` from ``finetune-classifier`` (chapter 6): a GPT whose head has one row per class;
* ``instruct.safetensors`` from ``finetune-instruct`` (chapter 7): a GPT with its language-model head.

The safetensors files hold weights only. Every size follows from a tensor's shape except the number of attention
heads: GPT-2's heads are 64 wide at every size, and the small stand-in of quick mode (64 wide in all) has its own
count; ``--n-heads`` names it for any other model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CommandError, one_line

GPT2_HEAD_DIM = 64


@dataclass
class BookCheckpoint:
    """``kind``: "pretrained" (chapter 5), "classifier" (chapter 6) or "instruct" (chapter 7)."""

    kind: str
    model: Any  # a chapter 4 GPTModel, on the CPU in float32
    tokenizer: Any  # GPT-2's tokenizer


def load_book_checkpoint(path: str, n_heads: int | None = None) -> BookCheckpoint:
    """Load ``path`` (see the module docstring) into the chapter 4 ``GPTModel`` it was saved from."""
    from ..tokenizers import gpt2_tokenizer
    from .generate import load_from_checkpoint

    if not Path(path).is_file():
        raise CommandError(f"checkpoint {path} does not exist: pass the checkpoint.pth of `llms-from-scratch "
                           "pretrain`, or the .safetensors file of `finetune-classifier` or `finetune-instruct`")
    if Path(path).suffix != ".safetensors":
        model, _ = load_from_checkpoint(path)  # its config travels inside the file
        return BookCheckpoint("pretrained", model.eval(), gpt2_tokenizer())
    model, kind = _finetuned_model(path, n_heads)
    return BookCheckpoint(kind, model.eval(), gpt2_tokenizer())


def _finetuned_model(path: str, n_heads: int | None) -> tuple[Any, str]:
    from safetensors import SafetensorError, safe_open

    from ..ch04 import GPTModel
    from ..ch06 import convert_to_classifier, load_model
    from ..training.base_model import STAND_IN_CONFIG

    try:
        with safe_open(path, framework="pt") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise CommandError(f"{path} is not a readable safetensors file ({one_line(str(exc))}); pass the file that "
                           "`finetune-classifier` or `finetune-instruct` saved") from None
    if any("lora" in name for name in shapes):
        raise CommandError(f"{path} holds LoRA adapters only; fine-tune without --trainable lora / --lora-rank to "
                           "get a file with the whole model, which the server can load")
    needed = ("tok_emb.weight", "pos_emb.weight", "out_head.weight")
    if any(name not in shapes for name in needed):
        raise CommandError(f"{path} is not a chapter 6 or 7 GPT checkpoint (it lacks {', '.join(needed)})")
    vocab_size, emb_dim = shapes["tok_emb.weight"]
    n_layers = len({name.split(".")[1] for name in shapes if name.startswith("trf_blocks.")})
    if n_heads is None:
        stand_in = (emb_dim, n_layers) == (STAND_IN_CONFIG["emb_dim"], STAND_IN_CONFIG["n_layers"])
        if stand_in:
            n_heads = STAND_IN_CONFIG["n_heads"]
        elif emb_dim % GPT2_HEAD_DIM == 0:
            n_heads = emb_dim // GPT2_HEAD_DIM
        else:
            raise CommandError(f"{path}: embeddings {emb_dim} wide are no GPT-2 size; pass --n-heads with the "
                               "number of attention heads the model was built with")
    if emb_dim % n_heads:
        raise CommandError(f"--n-heads {n_heads} does not divide the embedding width {emb_dim}")
    config = {"vocab_size": vocab_size, "context_length": shapes["pos_emb.weight"][0], "emb_dim": emb_dim,
              "n_heads": n_heads, "n_layers": n_layers, "drop_rate": 0.0,
              "qkv_bias": "trf_blocks.0.att.W_query.bias" in shapes}
    model = GPTModel(config)
    n_out = shapes["out_head.weight"][0]
    classifier = n_out != vocab_size
    if classifier:  # chapter 6 swaps the head for one with a row per class
        convert_to_classifier(model, num_classes=n_out)
    try:
        load_model(model, path)
    except ValueError as exc:
        raise CommandError(one_line(str(exc))) from None
    return model, "classifier" if classifier else "instruct"
