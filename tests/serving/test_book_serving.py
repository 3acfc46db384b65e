"""The book's own models behind ``serve --checkpoint`` (chapters 5, 6 and 7), the classifier route, the page's
files and the sampling fields the page sends (``top_k``, ``stream_options``)."""

from __future__ import annotations

import json

import pytest
import torch
from server_process import ServerProcess
from tiny_book_models import (
    CONFIG,
    OBVIOUS_SPAM,
    train_spam_classifier,
    write_instruct_checkpoint,
    write_pretrain_checkpoint,
)

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.ch05 import generate as book_generate
from llms_from_scratch.ch06 import CLASS_NAMES, classify_review, save_model
from llms_from_scratch.ch07 import format_prompt
from llms_from_scratch.cli._book_checkpoints import load_book_checkpoint
from llms_from_scratch.cli.errors import CommandError
from llms_from_scratch.serving.book_models import BookChatTokenizer, decoder_from_gpt
from llms_from_scratch.serving.classifier import ClassifierService
from llms_from_scratch.serving.generation import generate
from llms_from_scratch.serving.page import CONTENT_SECURITY_POLICY
from llms_from_scratch.tokenizers import gpt2_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest on a busy machine


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer()


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_the_zoo_decoder_computes_what_the_chapter_4_model_computes(qkv_bias):
    torch.manual_seed(0)
    gpt = GPTModel({**CONFIG, "qkv_bias": qkv_bias}).eval()
    decoder = decoder_from_gpt(gpt)
    ids = torch.randint(0, CONFIG["vocab_size"], (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(decoder(ids), gpt(ids), rtol=1e-5, atol=1e-5)
    # greedy generation with the KV cache picks chapter 5's tokens
    prompt = ids[:1, :4]
    expected = book_generate(gpt, prompt, 12, CONFIG["context_length"])
    assert generate(decoder, prompt, 12).tolist() == expected.tolist()


def test_prompt_layouts_are_the_ones_the_models_trained_on(tokenizer):
    ask = [{"role": "user", "content": "Name a colour."}]
    entry = {"instruction": "Name a colour.", "input": ""}
    for style in ("alpaca", "phi3"):
        layout = BookChatTokenizer(style, tokenizer)
        assert layout.render(ask) == format_prompt(entry, style)
        assert layout.encode_chat(ask) == tokenizer.encode(format_prompt(entry, style))
    two_turns = ask + [{"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another."}]
    assert BookChatTokenizer("alpaca", tokenizer).render(two_turns) == (
        format_prompt(entry) + "Blue.\n\n### Instruction:\nAnother.\n\n### Response:\n")
    assert BookChatTokenizer("phi3", tokenizer).render(two_turns) == (
        "<|user|>\nName a colour.\n<|assistant|>:\nBlue.\n<|user|>\nAnother.\n<|assistant|>:\n")
    # a system message takes the Alpaca preamble's place
    with_system = [{"role": "system", "content": "Answer in French."}, *ask]
    assert BookChatTokenizer("alpaca", tokenizer).render(with_system).startswith("Answer in French.\n\n### Instr")
    with pytest.raises(ValueError, match="must end with a user turn"):
        BookChatTokenizer("alpaca", tokenizer).render(ask + [{"role": "assistant", "content": "Red."}])
    # a base model continues the text of the turns
    base = BookChatTokenizer("continue", tokenizer)
    assert base.render([{"role": "user", "content": "Every effort moves"}]) == "Every effort moves"
    # <|endoftext|> typed in a message is plain text unless the server allows special tokens
    said = [{"role": "user", "content": "a<|endoftext|>b"}]
    assert 50256 not in base.encode_chat(said) and 50256 in base.encode_chat(said, allow_special_in_content=True)
    with pytest.raises(ValueError, match="unknown prompt layout"):
        BookChatTokenizer("chatml", tokenizer)


def test_each_kind_of_book_checkpoint_loads_with_its_weights(tmp_path, tokenizer):
    pretrained = write_pretrain_checkpoint(tmp_path / "checkpoint.pth")
    instruct = write_instruct_checkpoint(tmp_path / "instruct.safetensors")
    torch.manual_seed(2)
    classifier = GPTModel({**CONFIG, "n_heads": 2, "emb_dim": 32})
    classifier.out_head = torch.nn.Linear(32, 2)
    save_model(classifier, tmp_path / "classifier.safetensors")
    for path, model, kind in [("checkpoint.pth", pretrained, "pretrained"), ("instruct.safetensors", instruct, "instruct")]:
        loaded = load_book_checkpoint(str(tmp_path / path))
        assert loaded.kind == kind
        assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), model.state_dict().values()))
    # 32 wide is no GPT-2 size and not the stand-in: the heads must be named
    with pytest.raises(CommandError, match="pass --n-heads"):
        load_book_checkpoint(str(tmp_path / "classifier.safetensors"))
    loaded = load_book_checkpoint(str(tmp_path / "classifier.safetensors"), n_heads=2)
    assert loaded.kind == "classifier" and loaded.model.trf_blocks[0].att.num_heads == 2
    ids = torch.randint(0, 50257, (1, 7))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids), classifier.eval()(ids))
    with pytest.raises(CommandError, match="does not exist"):
        load_book_checkpoint(str(tmp_path / "absent.safetensors"))
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CommandError, match="not a readable safetensors file"):
        load_book_checkpoint(str(tmp_path / "broken.safetensors"))


def test_the_classifier_service_reads_where_chapter_6_reads(tmp_path, tokenizer):
    model = train_spam_classifier(tmp_path / "classifier.safetensors", tokenizer, steps=3)
    service = ClassifierService(model, tokenizer, "spam", CLASS_NAMES)
    for text in (OBVIOUS_SPAM, "See you at dinner"):
        scores = service.scores(text)
        assert sum(scores.values()) == pytest.approx(1.0)
        assert max(scores, key=scores.get) == classify_review(text, model, tokenizer, "cpu")
    with pytest.raises(ValueError, match="max_length must be from 1"):
        ClassifierService(model, tokenizer, "spam", CLASS_NAMES, max_length=CONFIG["context_length"] + 1)


def test_serve_a_chapter_6_classifier(tmp_path, tokenizer):
    model = train_spam_classifier(tmp_path / "spam.safetensors", tokenizer)
    server = ServerProcess(["--checkpoint", str(tmp_path / "spam.safetensors")], tmp_path / "server.log")
    try:
        status, _, raw = server.request("GET", "/v1/models")
        assert status == 200
        [card] = json.loads(raw)["data"]
        assert (card["id"], card["task"], card["labels"]) == ("spam", "classify", list(CLASS_NAMES))
        status, _, raw = server.request("POST", "/v1/classify", {"model": "spam", "input": OBVIOUS_SPAM})
        answer = json.loads(raw)
        expected = ClassifierService(model, tokenizer, "spam", CLASS_NAMES).scores(OBVIOUS_SPAM)
        assert status == 200 and answer["label"] == "spam" and answer["object"] == "classification"
        assert answer["scores"] == pytest.approx(expected, abs=1e-5)
        assert answer["probability"] == pytest.approx(expected["spam"], abs=1e-5)
        for body, param in [({"model": "spam", "input": ""}, "input"), ({"input": "hi"}, "model"),
                            ({"model": "other", "input": "hi"}, "model")]:
            status, _, raw = server.request("POST", "/v1/classify", body)
            assert status in (400, 404) and json.loads(raw)["error"]["param"] == param
        status, answer = server.chat("hello")
        assert status == 400 and "POST /v1/classify" in answer["error"]["message"]
    finally:
        server.stop()


def test_serve_a_chapter_5_checkpoint_with_the_page_and_a_key(tmp_path, tokenizer):
    model = write_pretrain_checkpoint(tmp_path / "checkpoint.pth")
    server = ServerProcess(["--checkpoint", str(tmp_path / "checkpoint.pth"), "--api-key", "s3cret"],
                           tmp_path / "server.log")
    key = {"Authorization": "Bearer s3cret"}
    try:
        # the page's files need no key, and come with a policy that allows this server only
        for path, media in [("/", "text/html"), ("/static/chat.js", "text/javascript"),
                            ("/static/chat.css", "text/css"), ("/static/favicon.svg", "image/svg+xml")]:
            status, headers, body = server.request("GET", path)
            assert status == 200 and headers["content-type"].startswith(media) and body
            assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        # everything else still wants it
        assert server.request("GET", "/v1/models")[0] == 401
        assert server.request("POST", "/", {})[0] == 401
        assert server.request("GET", "/static/other.js", headers=key)[0] == 404
        status, _, raw = server.request("GET", "/v1/models", headers=key)
        assert status == 200 and json.loads(raw)["data"][0]["task"] == "chat"

        # the base model continues the prompt exactly as chapter 5's generate does
        prompt = "Every effort moves you"
        ids = torch.tensor([tokenizer.encode(prompt)])
        continuation = book_generate(model, ids, 10, CONFIG["context_length"])[0, ids.shape[1]:].tolist()
        body = {"model": "checkpoint", "messages": [{"role": "user", "content": prompt}], "max_tokens": 10,
                "temperature": 0}
        status, _, raw = server.request("POST", "/v1/chat/completions", body, headers=key)
        assert status == 200
        assert json.loads(raw)["choices"][0]["message"]["content"] == tokenizer.decode(continuation)

        # stream_options.include_usage: a last chunk with no choices and the counts; top_k 1 is greedy
        status, _, raw = server.request("POST", "/v1/chat/completions", {
            **body, "temperature": 1.0, "top_k": 1, "stream": True, "stream_options": {"include_usage": True}},
            headers=key)
        events = [json.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: {")]
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
        assert status == 200 and text == tokenizer.decode(continuation)
        assert events[-1]["choices"] == [] and events[-1]["usage"] == {
            "prompt_tokens": ids.shape[1], "completion_tokens": 10, "total_tokens": ids.shape[1] + 10}
        for bad in [{"top_k": -1}, {"top_k": 1.5}, {"stream_options": "yes"}]:
            status, _, raw = server.request("POST", "/v1/chat/completions", {**body, **bad}, headers=key)
            assert status == 400, bad
        status, _, raw = server.request("POST", "/v1/classify", {"model": "checkpoint", "input": "hi"}, headers=key)
        assert status == 400 and "not a classifier" in json.loads(raw)["error"]["message"]
    finally:
        server.stop()


def test_quantize_is_refused_for_a_book_checkpoint(tmp_path, capsys):
    from llms_from_scratch.cli import main

    write_pretrain_checkpoint(tmp_path / "checkpoint.pth")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--checkpoint", str(tmp_path / "checkpoint.pth"), "--quantize", "int8", "--port", "0"])
    assert exit_info.value.code == 2
    assert "--quantize applies to -m models" in capsys.readouterr().err
