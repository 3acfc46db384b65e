"""The chat page in a real browser: headless Chromium, driven by Playwright, against real ``serve`` processes.

The browser is Debian's ``chromium`` package (``.ci/run`` installs it; ``$LLMS_CHROMIUM`` names another binary):
Playwright's own browser download needs a CDN, this one comes from the system's package registry. Without it the
tests are skipped. Each test saves a screenshot under its ``tmp_path``; with ``$LLMS_SCREENSHOT_DIR`` set they are
also copied there (that is how the user-interface folders of chapters 5, 6 and 7 got theirs).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from server_process import MODEL_ID, ServerProcess
from tiny_book_models import (
    OBVIOUS_SPAM,
    train_spam_classifier,
    write_instruct_checkpoint,
    write_pretrain_checkpoint,
)

from llms_from_scratch.ch05 import generate as book_generate
from llms_from_scratch.ch06 import PAD_TOKEN_ID
from llms_from_scratch.ch07 import format_prompt
from llms_from_scratch.data import AssetUnavailableError, fetch
from llms_from_scratch.tokenizers import gpt2_tokenizer

CHROMIUM = os.environ.get("LLMS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install Debian's chromium package (apt-get install -y "
                                                "chromium, as .ci/run does) or set LLMS_CHROMIUM to a Chromium binary"),
    pytest.mark.usefixtures("one_thread"),
]
WAIT_MS = 120_000  # a reply on a busy two-core machine


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


class Page:
    """A browser tab on a server's page that records every console error and uncaught exception."""

    def __init__(self, browser, server: ServerProcess, width: int = 820, height: int = 620) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.response = self.tab.goto(server.url + "/")
        self.tab.wait_for_selector("#model option", state="attached", timeout=WAIT_MS)

    def send(self, text: str, max_tokens: int) -> None:
        if not self.tab.evaluate("document.getElementById('settings').open"):
            self.tab.click("#settings summary")  # as a reader opens the settings
        self.tab.fill("#max-tokens", str(max_tokens))
        self.tab.fill("#prompt", text)
        self.tab.press("#prompt", "Enter")

    def last_reply(self, state: str = "done"):
        """The last reply once it is in ``state``; a reply that failed fails the test with the page's message."""
        selector = f".message.assistant.{state}, .message.error, .message.assistant.error"
        self.tab.wait_for_selector(selector, timeout=WAIT_MS)
        reply = self.tab.query_selector_all(selector)[-1]
        assert state in reply.get_attribute("class"), self.tab.text_content("#status")
        return reply

    def screenshot(self, tmp_path: Path, name: str) -> Path:
        path = tmp_path / name
        self.tab.screenshot(path=str(path))
        assert path.stat().st_size > 1000  # a picture, not an empty file
        if os.environ.get("LLMS_SCREENSHOT_DIR"):
            shutil.copy(path, Path(os.environ["LLMS_SCREENSHOT_DIR"]) / name)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def chat_server(tiny_folder, tmp_path_factory):
    process = ServerProcess(["-m", str(tiny_folder[0])], tmp_path_factory.mktemp("log") / "server.log")
    yield process
    process.stop()


@pytest.fixture
def page(browser, chat_server):
    tab = Page(browser, chat_server)
    yield tab
    tab.close()


def api_reply(server: ServerProcess, text: str, max_tokens: int) -> str:
    status, answer = server.chat(text, max_tokens=max_tokens)
    assert status == 200, answer
    return answer["choices"][0]["message"]["content"]


def test_the_page_loads_with_labels_and_no_errors(browser, chat_server, tmp_path):
    page = Page(browser, chat_server)
    try:
        assert page.response.status == 200
        assert "default-src 'none'" in page.response.headers["content-security-policy"]
        assert page.tab.eval_on_selector_all("#model option", "o => o.map(x => x.value)") == [MODEL_ID]
        # every control has a label that names it
        unlabelled = page.tab.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => !e.labels.length || !e.labels[0].textContent.trim()).map(e => e.id)""")
        assert unlabelled == []
        # Shift+Enter starts a new line instead of sending
        page.tab.fill("#prompt", "first line")
        page.tab.press("#prompt", "Shift+Enter")
        page.tab.keyboard.type("second line")
        assert page.tab.input_value("#prompt") == "first line\nsecond line"
        assert page.tab.locator(".message").count() == 0
        assert page.errors == []
    finally:
        page.close()
    phone = Page(browser, chat_server, width=375, height=700)
    try:  # at phone width nothing sticks out sideways
        assert phone.tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.tab.click("#settings summary")  # the settings open
        assert phone.tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.screenshot(tmp_path, "chat-page-phone.png")
        assert phone.errors == []
    finally:
        phone.close()


def test_a_streamed_reply_is_the_apis_greedy_answer(page, chat_server, tmp_path):
    expected = api_reply(chat_server, "Hello there", 24)
    # count the updates of the reply, to see it arrive in pieces rather than at once
    page.tab.evaluate("""() => { window.updates = 0; new MutationObserver(() => window.updates++)
        .observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true}); }""")
    page.send("Hello there", 24)
    reply = page.last_reply()
    assert reply.query_selector(".text").text_content() == expected
    assert page.tab.evaluate("window.updates") > 5
    meta = reply.query_selector(".meta").text_content()
    assert meta.startswith("24 tokens · ") and "tokens/s" in meta
    reply.query_selector(".copy").click()
    assert page.tab.evaluate("navigator.clipboard.readText()") == expected
    page.screenshot(tmp_path, "chat-page.png")
    # the second turn sends the first one back: the reply is the API's answer to the whole conversation
    body = {"model": chat_server.model, "max_tokens": 8, "temperature": 0, "messages": [
        {"role": "user", "content": "Hello there"}, {"role": "assistant", "content": expected},
        {"role": "user", "content": "And then?"}]}
    second = json.loads(chat_server.request("POST", "/v1/chat/completions", body)[2])["choices"][0]["message"]
    page.send("And then?", 8)
    page.tab.wait_for_selector(".message.assistant.done >> nth=1", timeout=WAIT_MS)
    assert page.tab.locator(".message.assistant .text").nth(1).text_content() == second["content"]
    page.tab.click("#reset")
    assert page.tab.locator(".message").count() == 0
    assert page.errors == []


def test_stop_interrupts_the_reply(page, chat_server):
    page.send("Tell me a long story", 2000)
    page.tab.wait_for_function(
        "() => (document.querySelector('.message.assistant .text')?.textContent || '').length > 0", timeout=WAIT_MS)
    page.tab.click("#stop")
    reply = page.last_reply("stopped")
    text = reply.query_selector(".text").text_content()
    page.tab.wait_for_timeout(500)
    assert reply.query_selector(".text").text_content() == text  # nothing arrives after the stop
    assert reply.query_selector(".meta").text_content().startswith("stopped after ")
    assert page.tab.is_enabled("#send") and not page.tab.is_enabled("#stop")
    # the server has let go of the generation: the next message is answered
    page.send("Hello there", 4)
    page.tab.wait_for_selector(".message.assistant.done", timeout=WAIT_MS)
    assert page.errors == []


def test_the_classifier_mode_labels_an_obvious_spam_message(browser, tmp_path):
    train_spam_classifier(tmp_path / "spam-classifier.safetensors", gpt2_tokenizer())
    server = ServerProcess(["--checkpoint", str(tmp_path / "spam-classifier.safetensors")], tmp_path / "server.log")
    page = Page(browser, server)
    try:
        assert page.tab.text_content("#mode") == "spam classifier"
        assert page.tab.text_content("#send") == "Classify"
        page.tab.fill("#prompt", OBVIOUS_SPAM)
        page.tab.press("#prompt", "Enter")
        text = page.last_reply().query_selector(".text").text_content()
        status, _, raw = server.request("POST", "/v1/classify", {"model": server.model, "input": OBVIOUS_SPAM})
        answer = json.loads(raw)
        assert status == 200 and answer["label"] == "spam"
        assert text == f"spam (probability {100 * answer['probability']:.1f}%)"
        page.tab.fill("#prompt", "Are we still meeting for lunch tomorrow?")
        page.tab.press("#prompt", "Enter")
        page.tab.wait_for_selector(".message.assistant.done >> nth=1", timeout=WAIT_MS)
        assert page.tab.locator(".message.assistant .text").nth(1).text_content().startswith("not spam")
        page.screenshot(tmp_path, "classifier-page.png")
        assert page.errors == []
    finally:
        page.close()
        server.stop()


# the Alpaca layout is also checked without a browser (test_book_serving.py), so the second server here is slow-marked
@pytest.mark.parametrize("kind", ["pretrained", pytest.param("instruct", marks=pytest.mark.slow)])
def test_a_book_checkpoint_answers_as_chapter_5_generates(browser, tmp_path, kind):
    """A chapter 5 checkpoint continues the text; a chapter 7 one answers the Alpaca prompt of the message."""
    path = tmp_path / ("checkpoint.pth" if kind == "pretrained" else "instruct.safetensors")
    model = (write_pretrain_checkpoint if kind == "pretrained" else write_instruct_checkpoint)(path)
    server = ServerProcess(["--checkpoint", str(path)], tmp_path / "server.log")
    page = Page(browser, server)
    try:
        message = "Every effort moves you"
        prompt = message if kind == "pretrained" else format_prompt({"instruction": message, "input": ""})
        tokenizer = gpt2_tokenizer()
        ids = torch.tensor([tokenizer.encode(prompt)])
        expected = book_generate(model, ids, 12, model.pos_emb.num_embeddings, eos_id=PAD_TOKEN_ID)[0, ids.shape[1]:]
        page.send(message, 12)
        assert page.last_reply().query_selector(".text").text_content() == tokenizer.decode(expected.tolist())
        page.screenshot(tmp_path, f"{kind}-page.png")
        assert page.errors == []
    finally:
        page.close()
        server.stop()


@pytest.mark.slow
def test_smollm2_answers_in_the_page_as_over_the_api(browser, tmp_path):
    try:
        fetch("smollm2-135m-instruct-gguf", quiet=True)
    except AssetUnavailableError as exc:
        pytest.skip(f"the SmolLM2-135M-Instruct checkpoint is not in the mirror or cache: {str(exc).splitlines()[0]}")
    server = ServerProcess(["-m", "smollm2-135m-instruct"], tmp_path / "server.log", startup_timeout=180)
    page = Page(browser, server)
    try:
        question = "What is the capital of France?"
        expected = api_reply(server, question, 32)
        page.send(question, 32)
        text = page.last_reply().query_selector(".text").text_content()
        assert text == expected and "Paris" in text
        page.screenshot(tmp_path, "smollm2-page.png")
        assert page.errors == []
    finally:
        page.close()
        server.stop()
