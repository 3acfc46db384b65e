"""The book's own GPT models behind the server: a chapter 4 ``GPTModel`` made into the zoo's decoder (so that it
generates with the KV cache like every zoo model), and GPT-2's tokenizer with the prompt layouts chapters 5 and 7
trained on.

* A chapter 5 model is a base model: it continues text. Its "conversation" is the text of the turns, one after
  the other, and the reply is the continuation (:data:`CONTINUE`).
* A chapter 7 model answers in the layout it was fine-tuned on, Alpaca (``### Instruction:`` ...
  ``### Response:``) or Phi-3 (``<|user|>`` ... ``<|assistant|>:``), from :mod:`llms_from_scratch.ch07`.

Both stop at ``<|endoftext|>``, which GPT-2 and chapter 7's training data end texts with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..models.decoder import DecoderLM
from ..models.gpt2 import make_config

CONTINUE = "continue"  # the layout of a base model: the conversation's text, continued
LAYOUTS = (CONTINUE, "alpaca", "phi3")

# chapter 4 keeps the feed-forward layers in an nn.Sequential (Linear, GELU, Linear); the zoo names them
_FF_NAMES = {".ff.layers.0.": ".ff.fc1.", ".ff.layers.2.": ".ff.fc2."}


def decoder_from_gpt(gpt: nn.Module) -> DecoderLM:
    """The zoo's :class:`DecoderLM` holding the weights of a chapter 4 ``GPTModel`` (same outputs, plus a KV cache
    and ``last_token_only`` for :func:`~.generation.stream`). The model must have its language-model head; a
    chapter 6 classifier is served as it is (:mod:`.classifier`)."""
    vocab_size, emb_dim = gpt.tok_emb.weight.shape
    first = gpt.trf_blocks[0].att
    cfg = make_config(emb_dim, len(gpt.trf_blocks), first.num_heads, vocab_size=vocab_size,
                      context_length=gpt.pos_emb.weight.shape[0])
    # chapter 4's head is its own matrix (not tied to the embedding); its query/key/value bias is a config choice
    cfg = cfg.replace(tie_embeddings=False, qkv_bias=first.W_query.bias is not None)
    state = {}
    for name, tensor in gpt.state_dict().items():
        if name.endswith(".att.mask"):  # chapter 4's causal-mask buffers: the zoo builds its masks itself
            continue
        for book, zoo in _FF_NAMES.items():
            name = name.replace(book, zoo)
        state[name] = tensor
    weight = gpt.tok_emb.weight
    decoder = DecoderLM(cfg).to(device=weight.device, dtype=weight.dtype)
    decoder.load_state_dict(state)  # strict: a GPTModel variant with other parameters is refused here
    return decoder.eval()


@dataclass
class BookChatTokenizer:
    """GPT-2's tokenizer with one of :data:`LAYOUTS` as its chat format: what :class:`~.chat_service.ChatService`
    needs (``chat_format``, ``encode_chat``, ``eos_ids``, ``decode``) for a model from chapter 5 or 7."""

    chat_format: str = CONTINUE
    base: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.chat_format not in LAYOUTS:
            raise ValueError(f"unknown prompt layout {self.chat_format!r}; choose one of {', '.join(LAYOUTS)}")
        if self.base is None:
            from ..tokenizers import gpt2_tokenizer

            self.base = gpt2_tokenizer()
        self.name = self.base.name
        self.eos_ids = self.base.eos_ids
        self.special_tokens = self.base.special_tokens

    def render(self, messages: list[dict[str, str]]) -> str:
        """The conversation as the text the model is given, ending where its answer begins."""
        if not messages:
            raise ValueError("a conversation needs at least one message")
        if self.chat_format == CONTINUE:
            return "\n".join(m["content"] for m in messages)
        from ..ch07 import ALPACA_PREAMBLE, format_prompt

        system = None
        if messages[0]["role"] == "system":
            system, messages = messages[0]["content"], messages[1:]
        if not messages or messages[-1]["role"] != "user":
            raise ValueError("an instruction conversation must end with a user turn (the instruction to answer)")
        text = ""
        for m in messages:
            if m["role"] == "assistant":
                text += m["content"]
                continue
            turn = format_prompt({"instruction": m["content"], "input": ""}, self.chat_format)
            if self.chat_format == "alpaca":
                # the preamble opens the prompt once; a system message takes its place
                turn = turn.removeprefix(ALPACA_PREAMBLE)
                turn = ((ALPACA_PREAMBLE if system is None else system) + turn) if not text else turn
            elif text:
                turn = "\n" + turn
            text += turn
        return text

    def encode_chat(self, messages: list[dict[str, str]], *, allow_special_in_content: bool = False,
                    **options: Any) -> list[int]:
        """Token ids of :meth:`render`; ``<|endoftext|>`` typed in a message is plain text unless
        ``allow_special_in_content``."""
        return self.base.encode(self.render(messages), allow_special=allow_special_in_content)

    def encode(self, text: str, **options: Any) -> list[int]:
        return self.base.encode(text, **options)

    def decode(self, ids: Any, *, skip_special: bool = False) -> str:
        return self.base.decode(ids, skip_special=skip_special)

