"""Chat formats of Gemma 3, SmolLM3 and gpt-oss (OpenAI's "harmony" format), as ``(text, from_a_message)`` pieces.

:class:`~.chat.ChatFormat` dispatches to these for its kinds "gemma", "smollm3" and "harmony". Each function
follows its family's official Jinja chat template for conversations of system, user and assistant text turns
(tool calls and images are not supported): rendered by ``transformers``, the templates give the same strings
for such conversations, with and without a system prompt or a generation prompt, in each reasoning mode. The
template texts are not part of this repository; ``tests/zoo/tokenizers/test_chat_turns.py`` checks the
structure. gpt-oss's template has had two revisions; this follows the later one, which ends the developer turn
right after the instructions (the first put a blank line there).

Two of the templates write the current date into the system turn (SmolLM3 as "06 December 2026", gpt-oss as
"2026-12-06"); pass ``date`` to fix it, as a test or a reproducible prompt needs.
"""

from __future__ import annotations

import datetime

Parts = list[tuple[str, bool]]


def gemma_parts(messages: list[dict[str, str]], add_generation_prompt: bool) -> Parts:
    """Gemma 3: ``<start_of_turn>user``/``model`` turns; a system prompt becomes the first user turn's opening
    paragraph; turns must alternate user/assistant; each message's text is stripped."""
    prefix: Parts = []
    if messages[0]["role"] == "system":
        # the template strips the user's text but not the system prompt placed in front of it
        prefix, messages = [(messages[0]["content"], True), ("\n\n", False)], messages[1:]
    out: Parts = [("<bos>", False)]
    for i, m in enumerate(messages):
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            raise ValueError("Gemma conversations alternate user and assistant turns, starting with the user (after "
                             f"an optional system prompt); turn {i} is {m['role']!r}")
        role = "model" if m["role"] == "assistant" else "user"
        out += [(f"<start_of_turn>{role}\n", False), *(prefix if i == 0 else []), (m["content"].strip(), True),
                ("<end_of_turn>\n", False)]
    if add_generation_prompt:
        out.append(("<start_of_turn>model\n", False))
    return out


_SMOLLM3_THINK = (
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
    "thoroughly exploring questions through a systematic thinking process before providing the final precise and "
    "accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, "
    "reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please "
    "structure your response into two main sections: Thought and Solution using the specified format: <think> "
    "Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. "
    "Each step should include detailed considerations such as analysing questions, summarizing relevant findings, "
    "brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting "
    "previous steps. In the Solution section, based on various attempts, explorations, and reflections from the "
    "Thought section, systematically present the final solution that you deem correct. The Solution section should "
    "be logical, accurate, and concise and detail necessary steps needed to reach the conclusion."
)
_SMOLLM3_PLAIN = "You are a helpful AI assistant named SmolLM, trained by Hugging Face."
_NO_THINK = "<think>\n\n</think>\n"  # an empty reasoning block: the answer follows at once


def smollm3_parts(messages: list[dict[str, str]], add_generation_prompt: bool, thinking: bool,
                  date: str | None) -> Parts:
    """SmolLM3: ChatML with a generated system turn (metadata, reasoning mode, instructions).

    ``thinking`` sets the reasoning mode; "/think" or "/no_think" written in the system prompt overrides it (and
    is removed from the prompt). In "/no_think" mode every answer, past ones included, starts with an empty think
    block. A system prompt containing "/system_override" replaces the generated system turn. Without tools the
    template leaves the generated system turn unclosed (no ``<|im_end|>``); so does this function.
    """
    think = thinking
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    if system is not None:
        if "/no_think" in system:
            think = False
        elif "/think" in system:
            think = True
    mode = "/think" if think else "/no_think"
    out: Parts = [("<|im_start|>system\n", False)]
    instructions = system.replace("/no_think", "").replace("/think", "").rstrip() if system is not None else ""
    if system is not None and "/system_override" in system:
        out += [(instructions.replace("/system_override", "").rstrip(), True), ("<|im_end|>\n", False)]
    else:
        today = date or datetime.date.today().strftime("%d %B %Y")
        out.append((f"## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: {today}\nReasoning Mode: {mode}"
                    "\n\n## Custom Instructions\n\n", False))
        if instructions:
            out += [(instructions, True), ("\n\n", False)]
        else:
            out.append(((_SMOLLM3_THINK if think else _SMOLLM3_PLAIN) + "\n\n", False))
    for m in messages:
        if m["role"] == "user":
            out += [("<|im_start|>user\n", False), (m["content"], True), ("<|im_end|>\n", False)]
        elif m["role"] == "assistant":
            out += [("<|im_start|>assistant\n" + ("" if think else _NO_THINK), False), (m["content"].lstrip("\n"), True),
                    ("<|im_end|>\n", False)]
    if add_generation_prompt:
        out.append(("<|im_start|>assistant\n" + ("" if think else _NO_THINK), False))
    return out


_CHANNEL_TAGS = ("<|channel|>analysis<|message|>", "<|channel|>final<|message|>")


def harmony_parts(messages: list[dict[str, str]], add_generation_prompt: bool, date: str | None,
                  reasoning_effort: str | None) -> Parts:
    """gpt-oss's harmony format: a system turn with the model's identity, date and reasoning effort ("low",
    "medium" or "high"); a system prompt becomes the developer turn's instructions; each answer is a message on
    the "final" channel. Past reasoning (the "analysis" channel) is not part of the prompt, as in the template.

    A finished conversation (the last turn an answer, no generation prompt) ends that answer with ``<|return|>``,
    the token the model emits at the end of its answer; in a prompt every earlier answer ends with ``<|end|>``.
    """
    effort = reasoning_effort or "medium"
    if effort not in ("low", "medium", "high"):
        raise ValueError(f"reasoning_effort must be 'low', 'medium' or 'high', got {effort!r}")
    today = date or datetime.date.today().isoformat()
    out: Parts = [("<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
                   f"Knowledge cutoff: 2024-06\nCurrent date: {today}\n\nReasoning: {effort}\n\n"
                   "# Valid channels: analysis, commentary, final. Channel must be included for every message."
                   "<|end|>", False)]
    if messages[0]["role"] == "system":
        if messages[0]["content"]:
            out += [("<|start|>developer<|message|># Instructions\n\n", False), (messages[0]["content"], True),
                    ("<|end|>", False)]
        messages = messages[1:]
    for i, m in enumerate(messages):
        if m["role"] == "user":
            out += [("<|start|>user<|message|>", False), (m["content"], True), ("<|end|>", False)]
        elif m["role"] == "assistant":
            if any(tag in m["content"] for tag in _CHANNEL_TAGS):
                raise ValueError("an assistant message holds <|channel|> markup; pass only the final answer's text")
            last = i == len(messages) - 1 and not add_generation_prompt
            out += [("<|start|>assistant<|channel|>final<|message|>", False), (m["content"], True),
                    ("<|return|>" if last else "<|end|>", False)]
    if add_generation_prompt:
        out.append(("<|start|>assistant", False))
    return out
