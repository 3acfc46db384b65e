"""The chat formats of Gemma 3, SmolLM3 and gpt-oss (harmony), checked against their documented structure.

The official Jinja templates are not available offline to the tests (and we do not copy other projects' template
text into this repository), so these tests spell out the structure each template produces: Gemma's
``<start_of_turn>`` turns with the system prompt folded into the first user turn; SmolLM3's generated system turn
(left unclosed without tools) and its empty think blocks in "/no_think" mode; harmony's system, developer and
"final"-channel turns. The formats are recognized from a template's markers.
"""

from __future__ import annotations

import pytest

from llms_from_scratch.tokenizers import ChatFormat
from llms_from_scratch.tokenizers.chat import chat_format_from_template

SYSTEM_FIRST = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Hi!\n"},
                {"role": "assistant", "content": "\nHello. "}, {"role": "user", "content": "Bye"}]


def test_gemma_folds_the_system_prompt_into_the_first_user_turn_and_strips_messages():
    text = ChatFormat("gemma").render(SYSTEM_FIRST)
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n"
                    "<start_of_turn>model\nHello.<end_of_turn>\n"
                    "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    done = ChatFormat("gemma").render(SYSTEM_FIRST[:3], add_generation_prompt=False)
    assert done.endswith("<start_of_turn>model\nHello.<end_of_turn>\n")
    with pytest.raises(ValueError, match="alternate"):
        ChatFormat("gemma").render([{"role": "assistant", "content": "first"}])


def test_smollm3_system_turn_states_date_and_mode_and_stays_open():
    fmt = ChatFormat("smollm3", thinking=True)
    header = "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 09 March 2026\n"
    thinking = fmt.render(SYSTEM_FIRST, date="09 March 2026")
    assert thinking == (header + "Reasoning Mode: /think\n\n## Custom Instructions\n\nBe brief.\n\n"
                        "<|im_start|>user\n  Hi!\n<|im_end|>\n<|im_start|>assistant\nHello. <|im_end|>\n"
                        "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n")
    plain = fmt.render(SYSTEM_FIRST[1:2], date="09 March 2026", enable_thinking=False)
    assert plain == (header + "Reasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are a helpful AI assistant "
                     "named SmolLM, trained by Hugging Face.\n\n<|im_start|>user\n  Hi!\n<|im_end|>\n"
                     "<|im_start|>assistant\n<think>\n\n</think>\n")
    # a flag in the system prompt wins over the switch and leaves the prompt; past answers get the empty block too
    flagged = fmt.render([{**SYSTEM_FIRST[0], "content": "Be brief. /no_think"}, *SYSTEM_FIRST[1:3]],
                         add_generation_prompt=False, date="09 March 2026")
    assert "Reasoning Mode: /no_think" in flagged and "Instructions\n\nBe brief.\n\n<|im_start|>user" in flagged
    assert flagged.endswith("<|im_start|>assistant\n<think>\n\n</think>\nHello. <|im_end|>\n")
    override = fmt.render([{"role": "system", "content": "Just this. /system_override"}, SYSTEM_FIRST[3]])
    assert override.startswith("<|im_start|>system\nJust this.<|im_end|>\n<|im_start|>user\nBye")
    assert "Today Date: " in fmt.render(SYSTEM_FIRST[1:2])  # today's date by default


def test_harmony_turns_and_channels():
    fmt = ChatFormat("harmony")
    system = ("<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge "
              "cutoff: 2024-06\nCurrent date: 2026-03-09\n\nReasoning: {}\n\n# Valid channels: analysis, "
              "commentary, final. Channel must be included for every message.<|end|>")
    text = fmt.render(SYSTEM_FIRST, date="2026-03-09")
    assert text == (system.format("medium") + "<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>"
                    "<|start|>user<|message|>  Hi!\n<|end|>"
                    "<|start|>assistant<|channel|>final<|message|>\nHello. <|end|>"
                    "<|start|>user<|message|>Bye<|end|><|start|>assistant")
    # no system prompt: no developer turn; a finished conversation ends its last answer with <|return|>
    done = fmt.render(SYSTEM_FIRST[1:3], add_generation_prompt=False, date="2026-03-09", reasoning_effort="high")
    assert done == (system.format("high") + "<|start|>user<|message|>  Hi!\n<|end|>"
                    "<|start|>assistant<|channel|>final<|message|>\nHello. <|return|>")
    with pytest.raises(ValueError, match="reasoning_effort"):
        fmt.render(SYSTEM_FIRST, reasoning_effort="max")
    with pytest.raises(ValueError, match="channel"):
        fmt.render([{"role": "user", "content": "x"},
                    {"role": "assistant", "content": "<|channel|>final<|message|>y"}])


def test_formats_are_recognized_from_template_markers():
    assert chat_format_from_template("{{ bos_token }}{{ '<start_of_turn>' + role }}").kind == "gemma"
    smollm3 = chat_format_from_template('{{- "<|im_start|>system\\n" -}}{{- "Reasoning Mode: " + mode -}}')
    assert smollm3.kind == "smollm3" and smollm3.thinking
    assert chat_format_from_template('{{- "<|start|>assistant<|channel|>final<|message|>" }}').kind == "harmony"
    assert chat_format_from_template("{{ '<|im_start|>' + message['role'] }}").kind == "chatml"


@pytest.mark.parametrize("kind", ["gemma", "smollm3", "harmony"])
def test_markup_and_message_text_are_told_apart(kind):
    parts = ChatFormat(kind, thinking=True).parts(SYSTEM_FIRST, date="2026-03-09")
    messages = [text for text, from_message in parts if from_message]
    # the message texts (Gemma strips them, SmolLM3 strips an answer's leading newlines, harmony keeps them)
    assert "Bye" in messages and "Be brief." in messages
    assert all("<" not in text for text in messages)
