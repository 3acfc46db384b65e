"""Chat formats: how an instruct model expects a conversation to be laid out as text.

Each format renders a list of ``{"role": ..., "content": ...}`` messages and, with ``add_generation_prompt``,
ends with the header after which the model writes the assistant's answer.

A rendered conversation mixes two kinds of text: the format's own markup (``<|im_start|>user\\n``) and what the
messages say. :meth:`ChatTemplateMixin.encode_chat` keeps them apart: the markup's special-token strings become
control tokens, while the same strings inside a message are encoded as the plain text they are, so that a message
cannot end its own turn and forge another one (a system turn, say).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import lru_cache

from .chat_turns import gemma_parts, harmony_parts, smollm3_parts

# a rendered conversation as pieces of text, each marked True when it comes from a message (content) and False
# when the chat format wrote it (markup)
Parts = list[tuple[str, bool]]


@dataclass(frozen=True)
class ChatFormat:
    """``kind``: "llama3", "chatml", "qwen3" (ChatML plus the thinking switch), "llama2" (Llama 2 chat),
    "mistral" (Mistral 7B instruct v0.1/v0.2), "gemma" (Gemma 3), "smollm3" or "harmony" (gpt-oss; the last
    three in ``chat_turns.py``). ``default_system``: inserted when a conversation has no system turn (SmolLM2
    does this). ``thinking``: Qwen3's and SmolLM3's switch; when off, the answer starts with an empty think
    block. ``date`` (SmolLM3, gpt-oss: the date the system turn states; default today) and ``reasoning_effort``
    (gpt-oss: "low", "medium" or "high") are options of ``render`` and ``parts``."""

    kind: str
    default_system: str | None = None
    thinking: bool = False

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True,
               enable_thinking: bool | None = None, date: str | None = None,
               reasoning_effort: str | None = None) -> str:
        return "".join(text for text, _ in self.parts(messages, add_generation_prompt=add_generation_prompt,
                                                      enable_thinking=enable_thinking, date=date,
                                                      reasoning_effort=reasoning_effort))

    def parts(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True,
              enable_thinking: bool | None = None, date: str | None = None,
              reasoning_effort: str | None = None) -> Parts:
        """The rendered conversation as ``(text, from_a_message)`` pieces; joined, they are :meth:`render`."""
        if not messages:
            raise ValueError("a conversation needs at least one message")
        for m in messages:
            if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                raise ValueError(f"each message needs a role (system/user/assistant) and text content, got {m!r}")
        if self.kind == "llama3":
            parts = self._llama3(messages, add_generation_prompt)
        elif self.kind in ("llama2", "mistral"):
            parts = self._inst(messages)
        elif self.kind == "gemma":
            parts = gemma_parts(messages, add_generation_prompt)
        elif self.kind == "smollm3":
            thinking = self.thinking if enable_thinking is None else enable_thinking
            parts = smollm3_parts(messages, add_generation_prompt, thinking, date)
        elif self.kind == "harmony":
            parts = harmony_parts(messages, add_generation_prompt, date, reasoning_effort)
        else:
            parts = self._chatml(messages, add_generation_prompt, enable_thinking)
        return [(text, content) for text, content in parts if text]

    def _llama3(self, messages, add_generation_prompt) -> Parts:
        out = [("<|begin_of_text|>", False)]
        for m in messages:
            out += [(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n", False), (m["content"].strip(), True),
                    ("<|eot_id|>", False)]
        if add_generation_prompt:
            out.append(("<|start_header_id|>assistant<|end_header_id|>\n\n", False))
        return out

    def _chatml(self, messages, add_generation_prompt, enable_thinking) -> Parts:
        out: Parts = []
        if self.default_system is not None and messages[0]["role"] != "system":
            out.append((f"<|im_start|>system\n{self.default_system}<|im_end|>\n", False))  # the model file's text
        for m in messages:
            out += [(f"<|im_start|>{m['role']}\n", False), (m["content"], True), ("<|im_end|>\n", False)]
        if add_generation_prompt:
            out.append(("<|im_start|>assistant\n", False))
            thinking = self.thinking if enable_thinking is None else enable_thinking
            if self.kind == "qwen3" and not thinking:
                out.append(("<think>\n\n</think>\n\n", False))
        return out

    def _inst(self, messages) -> Parts:
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
        llama2 = self.kind == "llama2"
        out: Parts = [] if llama2 else [("<s>", False)]
        for i, m in enumerate(messages):
            content: Parts = [(m["content"], True)]
            if m["role"] == "user":
                if i == 0 and system is not None:
                    content = ([("<<SYS>>\n", False), (system, True), ("\n<</SYS>>\n\n", False), *content] if llama2
                               else [(system, True), ("\n\n", False), *content])
                if llama2:  # Meta's reference strips each turn
                    out += [("<s>[INST] ", False), *_strip(content), (" [/INST]", False)]
                else:
                    out += [("[INST] ", False), *content, (" [/INST]", False)]
            elif llama2:
                out += [(" ", False), *_strip(content), (" </s>", False)]
            else:
                out += [(" ", False), *content, ("</s>", False)]
        return out


def _strip(parts: Parts) -> Parts:
    """``parts`` with the whitespace at both ends of their joined text removed, as ``str.strip`` would."""
    out = [list(p) for p in parts]
    for p in out:  # leading whitespace: parts that are nothing but whitespace vanish
        p[0] = p[0].lstrip()
        if p[0]:
            break
    for p in reversed(out):
        p[0] = p[0].rstrip()
        if p[0]:
            break
    return [(text, content) for text, content in out if text]


@lru_cache(maxsize=16)
def _special_pattern(tokens: tuple[str, ...]) -> re.Pattern | None:
    # longest first, so that a token that starts another one does not cut it short
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))) if tokens else None


@lru_cache(maxsize=16)
def _knows_text_start(cls: type) -> bool:
    # SentencePiece tokenizers prefix "▁" to the first stretch of text only, in some vocabularies
    return "at_start" in inspect.signature(cls._encode_ordinary).parameters


class ChatTemplateMixin:
    """``apply_chat_template`` and ``encode_chat`` for tokenizers with a ``name`` and a ``chat_format`` (None for
    base models). ``encode_chat`` also needs the tokenizer's ``special_tokens`` (text to id) and its
    ``_encode_ordinary`` (a stretch of text without special tokens to ids), which both of the zoo's tokenizer
    classes have."""

    name: str
    chat_format: ChatFormat | None

    def apply_chat_template(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True,
                            **options) -> str:
        """Render a conversation in the model's chat format (instruct / chat models only)."""
        return self._chat_format().render(messages, add_generation_prompt=add_generation_prompt, **options)

    def encode_chat(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True,
                    allow_special_in_content: bool = False, **options) -> list[int]:
        """Token ids of a conversation in the model's chat format: what a chat model is given to answer.

        The format's markup becomes control tokens. A special-token string inside a message's content (a user
        typing ``<|im_end|>``) is encoded as the plain text it is, unless ``allow_special_in_content`` is True:
        then the ids are those of ``encode(apply_chat_template(messages))``, and a message can write the
        format's markup itself. A conversation whose messages hold no special-token strings gets the same ids
        either way.
        """
        parts = self._chat_format().parts(messages, add_generation_prompt=add_generation_prompt, **options)
        if allow_special_in_content:
            return self.encode("".join(text for text, _ in parts))
        specials: dict[str, int] = self.special_tokens
        pattern = _special_pattern(tuple(specials))
        ids: list[int] = []
        pending = ""  # text since the last control token, content and markup alike, encoded as one stretch
        for text, from_message in parts:
            if from_message or pattern is None:
                pending += text
                continue
            pos = 0
            for m in pattern.finditer(text):
                ids += self._encode_stretch(pending + text[pos:m.start()], at_start=not ids)
                ids.append(specials[m.group()])
                pending, pos = "", m.end()
            pending += text[pos:]
        return ids + self._encode_stretch(pending, at_start=not ids)

    def _encode_stretch(self, text: str, *, at_start: bool) -> list[int]:
        """Ids of text between two control tokens, encoded as ``encode`` encodes such a stretch."""
        if _knows_text_start(type(self)):
            return self._encode_ordinary(text, at_start=at_start)
        return self._encode_ordinary(text)

    def _chat_format(self) -> ChatFormat:
        if self.chat_format is None:
            raise ValueError(
                f"{self.name} is a base model's tokenizer and has no chat format; "
                "encode the prompt as plain text, or use the instruct model's tokenizer"
            )
        return self.chat_format


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
    if "<|im_start|>" in template and "Reasoning Mode: " in template:
        return ChatFormat("smollm3", thinking=True)  # the template's default is thinking on
    if "<start_of_turn>" in template:
        return ChatFormat("gemma")
    if "<|channel|>" in template:
        return ChatFormat("harmony")
    if "<|im_start|>" in template:
        default = _DEFAULT_SYSTEM.search(template)
        return ChatFormat("chatml", default_system=default.group(1) if default else None)
    if sentencepiece and "[INST]" in template:
        return ChatFormat("llama2" if "<<SYS>>" in template else "mistral")
    return None
