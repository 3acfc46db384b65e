"""Our chat formats against the official chat templates, rendered by ``transformers`` with Jinja.

What can be checked where:

* **SmolLM2 (ChatML)**: the official template ships in the GGUF file's ``tokenizer.chat_template``; we render
  it with ``transformers``' own Jinja renderer and compare whole strings, for single- and multi-turn
  conversations, with and without a system prompt, with ``add_generation_prompt`` on and off.
* **Qwen3 and Qwen1 (ChatML)**: their template files are not available offline, and we do not copy other
  projects' template text into this repository. For conversations that start with a system message the
  SmolLM2 template is plain ChatML, so it checks Qwen's rendering with thinking on (Qwen3's template adds
  nothing there). The thinking-off form (an empty ``<think>`` block after the generation header) is checked
  against its documented token structure only.
* **Llama 3**: no template file offline either; the tests check the documented structure token by token
  (one BOS, a header of special tokens around each role, ``<|eot_id|>`` after each message).

Base models never get a chat format.
"""

from __future__ import annotations

import pytest

from llms_from_scratch.data import fetch
from llms_from_scratch.tokenizers import ChatFormat, gguf_tokenizer, llama3_tokenizer, qwen3_tokenizer

transformers = pytest.importorskip("transformers")
from transformers.utils.chat_template_utils import render_jinja_template  # noqa: E402

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi!"}],
    [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "  And Italy?\n"},
    ],
    [
        {"role": "user", "content": "Write a haiku\nabout tea."},
        {"role": "assistant", "content": "Steam rises, leaves sink —\nquiet cup."},
        {"role": "user", "content": "Thanks 🙏"},
        {"role": "assistant", "content": "You're welcome."},
    ],
]


@pytest.fixture(scope="module")
def smollm2_file():
    return fetch("smollm2-135m-instruct-gguf")


@pytest.fixture(scope="module")
def smollm2(smollm2_file):
    return gguf_tokenizer(smollm2_file)


@pytest.fixture(scope="module")
def official_chatml(smollm2_file):
    import gguf

    template = gguf.GGUFReader(str(smollm2_file)).fields["tokenizer.chat_template"].contents()
    assert "<|im_start|>" in template

    def render(messages, add_generation_prompt):
        rendered, _ = render_jinja_template([messages], chat_template=template,
                                            add_generation_prompt=add_generation_prompt)
        return rendered[0]

    return render


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
def test_smollm2_matches_official_template(smollm2, official_chatml, conversation, add_generation_prompt):
    messages = CONVERSATIONS[conversation]
    ours = smollm2.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
    assert ours == official_chatml(messages, add_generation_prompt)


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_qwen_chatml_matches_the_chatml_template(official_chatml, add_generation_prompt):
    """With a system message first, ChatML has no default to insert: Qwen3 (thinking on) and plain ChatML
    (Qwen1 chat's format) render exactly what the SmolLM2 template renders."""
    qwen3 = qwen3_tokenizer()
    chatml = ChatFormat("chatml")
    for messages in CONVERSATIONS:
        if messages[0]["role"] != "system":
            continue
        expected = official_chatml(messages, add_generation_prompt)
        assert qwen3.apply_chat_template(messages, add_generation_prompt=add_generation_prompt) == expected
        assert qwen3.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                         enable_thinking=True) == expected
        assert chatml.render(messages, add_generation_prompt=add_generation_prompt) == expected


def test_qwen3_thinking_off_structure():
    """Thinking off = thinking on + an empty think block after the generation header; only the prompt for
    the next answer changes, never the earlier turns."""
    tok = qwen3_tokenizer()
    for messages in CONVERSATIONS:
        on = tok.apply_chat_template(messages)
        off = tok.apply_chat_template(messages, enable_thinking=False)
        assert off == on + "<think>\n\n</think>\n\n"
        ids = tok.encode(off)
        think, end_think, im_start, im_end = 151667, 151668, 151644, 151645
        assert ids[-7:-4] == [im_start, 77091, 198]  # <|im_start|>assistant\n
        assert ids[-4] == think and ids[-2] == end_think and ids.count(think) == 1
        assert ids.count(im_start) == ids.count(im_end) + 1
        # without a generation prompt the switch has nothing to act on
        assert tok.apply_chat_template(messages, add_generation_prompt=False, enable_thinking=False) == \
            tok.apply_chat_template(messages, add_generation_prompt=False)


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_llama3_token_structure(add_generation_prompt):
    tok = llama3_tokenizer()
    bos, start_header, end_header, eot = 128000, 128006, 128007, 128009
    for messages in CONVERSATIONS:
        ids = tok.encode(tok.apply_chat_template(messages, add_generation_prompt=add_generation_prompt))
        assert ids[0] == bos and ids.count(bos) == 1
        # split into blocks at each header start: every message is header, "\n\n", stripped content, <|eot_id|>
        starts = [i for i, t in enumerate(ids) if t == start_header]
        blocks = [ids[a:b] for a, b in zip(starts, starts[1:] + [len(ids)])]
        assert len(blocks) == len(messages) + add_generation_prompt
        for block, message in zip(blocks, messages):
            role_end = block.index(end_header)
            assert tok.decode(block[1:role_end]) == message["role"]
            assert block[role_end + 1] == 271 and block[-1] == eot  # 271 is "\n\n"
            assert tok.decode(block[role_end + 2 : -1]) == message["content"].strip()
        if add_generation_prompt:
            assert blocks[-1] == [start_header, 78191, end_header, 271]  # 78191 is "assistant"
        else:
            assert ids[-1] == eot


def test_base_models_have_no_template(smollm2):
    messages = CONVERSATIONS[0]
    for base in (llama3_tokenizer(instruct=False), qwen3_tokenizer(instruct=False)):
        assert base.chat_format is None
        with pytest.raises(ValueError, match="base model"):
            base.apply_chat_template(messages)
    assert smollm2.chat_format is not None  # the instruct GGUF carries its template
