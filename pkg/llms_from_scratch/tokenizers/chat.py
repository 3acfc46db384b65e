"""Chat formats: how an instruct model expects a conversation to be laid out as text.

Each format renders a list of ``{"role": ..., "content": ...}`` messages and, with ``add_generation_prompt``,
ends with the header after which the model writes the assistant's answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatFormat:
    """``kind``: "llama3", "chatml", "qwen3" (ChatML plus the thinking switch), "llama2" (Llama 2 chat) or
    "mistral" (Mistral 7B instruct v0.1/v0.2). ``default_system``: inserted when a conversation has no system
    turn (SmolLM2 does this). ``thinking``: Qwen3's switch; when off, the answer starts with an empty think
    block."""

    kind: str
    default_system: str | None = None
    thinking: bool = False

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True,
               enable_thinking: bool | None = None) -> str:
        if not messages:
            raise ValueError("a conversation needs at least one message")
        for m in messages:
            if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                raise ValueError(f"each message needs a role (system/user/assistant) and text content, got {m!r}")
        if self.kind == "llama3":
            return self._llama3(messages, add_generation_prompt)
        if self.kind in ("llama2", "mistral"):
            return self._inst(messages)
        return self._chatml(messages, add_generation_prompt, enable_thinking)

    def _llama3(self, messages, add_generation_prompt) -> str:
        out = "<|begin_of_text|>"
        for m in messages:
            out += f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>"
        if add_generation_prompt:
            out += "<|start_header_id|>assistant<|end_header_id|>\n\n"
        return out

    def _chatml(self, messages, add_generation_prompt, enable_thinking) -> str:
        out = ""
        if self.default_system is not None and messages[0]["role"] != "system":
            out += f"<|im_start|>system\n{self.default_system}<|im_end|>\n"
        for m in messages:
            out += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
        if add_generation_prompt:
            out += "<|im_start|>assistant\n"
            thinking = self.thinking if enable_thinking is None else enable_thinking
            if self.kind == "qwen3" and not thinking:
                out += "<think>\n\n</think>\n\n"
        return out

    def _inst(self, messages) -> str:
        """Llama 2 chat and Mistral instruct: each user turn wrapped in ``[INST] ... [/INST]``, each answer
        closed by ``</s>``, every exchange opened by ``<s>`` (Llama 2) or only the first one (Mistral).

        The system prompt goes into the first user turn: inside a ``<<SYS>>`` block (Llama 2) or as a
        paragraph before it (Mistral). The prompt ends with ``[/INST]``, after which the model answers, so
        ``add_generation_prompt`` changes nothing. Encode the result with a tokenizer that gives each
        stretch between special tokens its own "▁" prefix (SentencePiece does), as the reference code
        encodes each turn separately.
        """
        system = None
        if messages[0]["role"] == "system":
            system, messages = messages[0]["content"], messages[1:]
        if not messages:
            raise ValueError(f"a {self.kind} conversation needs a user turn after the system prompt")
        for i, m in enumerate(messages):
            if m["role"] != ("user" if i % 2 == 0 else "assistant"):
                raise ValueError(f"{self.kind} conversations alternate user and assistant turns, starting with "
                                 f"the user (after an optional system turn); turn {i} is {m['role']!r}")
        out = "" if self.kind == "llama2" else "<s>"
        for i, m in enumerate(messages):
            content = m["content"]
            if m["role"] == "user":
                if i == 0 and system is not None:
                    content = (f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}" if self.kind == "llama2"
                               else f"{system}\n\n{content}")
                if self.kind == "llama2":  # Meta's reference strips each turn
                    out += f"<s>[INST] {content.strip()} [/INST]"
                else:
                    out += f"[INST] {content} [/INST]"
            elif self.kind == "llama2":
                out += f" {content.strip()} </s>"
            else:
                out += f" {content}</s>"
        return out


class ChatTemplateMixin:
    """``apply_chat_template`` for tokenizers with a ``name`` and a ``chat_format`` (None for base models)."""

    name: str
    chat_format: ChatFormat | None

    def apply_chat_template(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True,
                            **options) -> str:
        """Render a conversation in the model's chat format (instruct / chat models only)."""
        if self.chat_format is None:
            raise ValueError(
                f"{self.name} is a base model's tokenizer and has no chat format; "
                "encode the prompt as plain text, or use the instruct model's tokenizer"
            )
        return self.chat_format.render(messages, add_generation_prompt=add_generation_prompt, **options)


# a literal default system turn in a Jinja chat template; quotes or braces inside mean template code, such as
# Qwen's "'<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>'", not a default text
_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\n|\\n)([^'\"{}\n]*?)<\|im_end\|>")


def chat_format_from_template(template: str | None, *, sentencepiece: bool = False) -> ChatFormat | None:
    """The chat format a Hugging Face / GGUF Jinja ``chat_template`` describes, recognized by its markers;
    None for no template (a base model) or one not recognized.

    ChatML (``<|im_start|>``) applies to any tokenizer. The ``[INST]`` formats (``<<SYS>>`` marks Llama 2 chat,
    else Mistral instruct) are recognized only with ``sentencepiece=True``: they are written for a tokenizer that
    gives each stretch between special tokens its own "▁" prefix, and byte-level tokenizers with ``[INST]``
    templates (Mistral's Tekken) space the markers differently.
    """
    if not template:
        return None
    if "<|im_start|>" in template:
        default = _DEFAULT_SYSTEM.search(template)
        return ChatFormat("chatml", default_system=default.group(1) if default else None)
    if sentencepiece and "[INST]" in template:
        return ChatFormat("llama2" if "<<SYS>>" in template else "mistral")
    return None
