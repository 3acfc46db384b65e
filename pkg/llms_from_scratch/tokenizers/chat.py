"""Chat formats: how an instruct model expects a conversation to be laid out as text.

Each format renders a list of ``{"role": ..., "content": ...}`` messages and, with ``add_generation_prompt``,
ends with the header after which the model writes the assistant's answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatFormat:
    """``kind``: "llama3", "chatml" or "qwen3" (ChatML plus the thinking switch). ``default_system``: inserted when a conversation has no system turn
    (SmolLM2 does this). ``thinking``: Qwen3's switch; when off, the answer starts with an empty think block."""

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


# a literal default system turn in a Jinja chat template; quotes or braces inside mean template code, such as
# Qwen's "'<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>'", not a default text
_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\n|\\n)([^'\"{}\n]*?)<\|im_end\|>")


def chat_format_from_template(template: str | None) -> ChatFormat | None:
    """The chat format a Hugging Face / GGUF Jinja ``chat_template`` describes (ChatML only), else None."""
    if not template or "<|im_start|>" not in template:
        return None
    default = _DEFAULT_SYSTEM.search(template)
    return ChatFormat("chatml", default_system=default.group(1) if default else None)
