"""Scoring instruction-tuned responses: an LLM judge over HTTP, and metrics that need no judge.

The judge client speaks the OpenAI-compatible chat-completions API (``POST {base}/v1/chat/completions``) that
Ollama (``http://localhost:11434``), llama.cpp's ``llama-server`` (``http://localhost:8080``), vLLM
(``http://localhost:8000``) and this project's own server all serve. It needs only the standard library.
Settings come from arguments or from ``$LLMS_JUDGE_URL`` / ``$LLMS_JUDGE_MODEL`` / ``$LLMS_JUDGE_API_KEY``.

Failures are told apart, because each has a different fix: :class:`JudgeConnectionError` (nothing listening),
:class:`JudgeTimeoutError` (the server is too slow), :class:`JudgeResponseError` (an HTTP error or a reply that
is not a chat completion). Timeouts, connection failures, HTTP 429 and 5xx are retried with a growing pause.

The judge-free metrics are ROUGE-L (longest common subsequence of words, F-measure) and exact match after
normalisation; both are written out here so their definitions are visible.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .ch07 import format_input

URL_ENV, MODEL_ENV, API_KEY_ENV = "LLMS_JUDGE_URL", "LLMS_JUDGE_MODEL", "LLMS_JUDGE_API_KEY"
DEFAULT_URL = "http://localhost:11434"  # Ollama's default address
DEFAULT_MODEL = "llama3.2"

SERVER_HINT = (
    "Start an OpenAI-compatible server and point the judge at it, e.g.\n"
    "  Ollama:    ollama serve  &&  ollama pull llama3.2        (url http://localhost:11434, model llama3.2)\n"
    "  llama.cpp: llama-server -m MODEL.gguf --port 8080        (url http://localhost:8080)\n"
    "  vLLM:      vllm serve MODEL_NAME --port 8000             (url http://localhost:8000)\n"
    f"then pass url=/model= or set ${URL_ENV} and ${MODEL_ENV}."
)


class JudgeError(RuntimeError):
    """The judge could not deliver an answer; the message says why and what to do."""


class JudgeConnectionError(JudgeError):
    """No server accepted the connection."""


class JudgeTimeoutError(JudgeError):
    """The server accepted the request but did not answer in time."""


class JudgeResponseError(JudgeError):
    """The server answered with an HTTP error or with something that is not a chat completion."""


class _Retryable(Exception):
    def __init__(self, error: JudgeError):
        self.error = error


def chat_completions_url(url: str) -> str:
    """Accept ``http://host:port``, ``.../v1`` or the full ``.../v1/chat/completions`` address."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"judge url must start with http:// or https://, got {url!r}")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


@dataclass
class JudgeClient:
    """A minimal, dependency-free client for an OpenAI-compatible chat-completions server."""

    url: str = field(default_factory=lambda: os.environ.get(URL_ENV, DEFAULT_URL))
    model: str = field(default_factory=lambda: os.environ.get(MODEL_ENV, DEFAULT_MODEL))
    timeout: float = 60.0  # seconds for one request
    retries: int = 2  # extra attempts after the first one
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    api_key: str | None = field(default_factory=lambda: os.environ.get(API_KEY_ENV))

    def __post_init__(self) -> None:
        self.endpoint = chat_completions_url(self.url)
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")

    def chat(self, messages: Sequence[dict[str, str]], temperature: float = 0.0, max_tokens: int | None = None,
             seed: int | None = 123) -> str:
        """Send the messages and return the assistant's reply text."""
        payload: dict[str, Any] = {"model": self.model, "messages": list(messages), "temperature": temperature}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if seed is not None:
            payload["seed"] = seed  # servers that support it make the answer reproducible
        body = json.dumps(payload).encode("utf-8")
        for attempt in range(self.retries + 1):
            try:
                return self._post(body)
            except _Retryable as exc:
                if attempt == self.retries:
                    raise exc.error from None
                time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def ask(self, prompt: str, **kwargs) -> str:
        """One user message in, the reply text out."""
        return self.chat([{"role": "user", "content": prompt}], **kwargs)

    def _post(self, body: bytes) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        tries = f"{self.retries + 1} attempt(s)"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = f"the judge at {self.endpoint} answered HTTP {exc.code} {exc.reason}: {_snippet(exc.read())}"
            if exc.code == 404:
                message += f"\nIs the model name {self.model!r} right, and does the server serve /v1/chat/completions?"
            error = JudgeResponseError(message)
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(error) from None
            raise error from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retryable(self._timeout_error(tries)) from None
            raise _Retryable(JudgeConnectionError(
                f"nothing is listening at {self.endpoint} ({exc.reason}; {tries}).\n{SERVER_HINT}")) from None
        except TimeoutError:
            raise _Retryable(self._timeout_error(tries)) from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(JudgeConnectionError(
                f"the connection to {self.endpoint} broke off ({exc.__class__.__name__}: {exc}; {tries})")) from None
        return _parse_reply(raw, self.endpoint)

    def _timeout_error(self, tries: str) -> JudgeTimeoutError:
        return JudgeTimeoutError(
            f"the judge at {self.endpoint} did not answer within {self.timeout:g} s ({tries}); a large model on a "
            f"CPU can be slow: raise timeout=, or use a smaller judge model"
        )


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _parse_reply(raw: bytes, endpoint: str) -> str:
    try:
        reply = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise JudgeResponseError(
            f"the server at {endpoint} did not answer with JSON (got {_snippet(raw)}); is it an OpenAI-compatible "
            f"chat-completions server?"
        ) from None
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeResponseError(
            f"the reply from {endpoint} has no choices[0].message.content (got {_snippet(raw)}); is it an "
            f"OpenAI-compatible chat-completions server?"
        ) from None
    if not isinstance(content, str):
        raise JudgeResponseError(f"choices[0].message.content from {endpoint} is not text: {content!r}")
    return content


# ---------------------------------------------------------------------------------------------------------------
# Scoring with the judge
# ---------------------------------------------------------------------------------------------------------------

def judge_prompt(entry: dict[str, Any], response_key: str = "model_response") -> str:
    """Ask for a 0-100 score of ``entry[response_key]`` given the task and the reference answer."""
    return (
        f"You are grading answers to instructions.\n\n"
        f"Task:\n{format_input(entry)}\n\n"
        f"Reference answer:\n{entry['output']}\n\n"
        f"Answer to grade:\n{entry[response_key]}\n\n"
        f"Score the answer from 0 (wrong or unrelated) to 100 (as good as the reference). "
        f"Reply with the integer score only."
    )


def parse_score(reply: str) -> int:
    """The first integer 0-100 in the judge's reply; an error names the reply when there is none."""
    for match in re.finditer(r"\d+", reply):
        value = int(match.group())
        if 0 <= value <= 100:
            return value
    raise JudgeResponseError(f"the judge's reply contains no score between 0 and 100: {reply[:200]!r}")


def generate_model_scores(entries: Sequence[dict[str, Any]], client: JudgeClient,
                          response_key: str = "model_response", progress: bool = True) -> list[int | None]:
    """Judge every entry; an unparsable reply gives ``None`` (counted, never guessed)."""
    from tqdm import tqdm

    scores: list[int | None] = []
    for entry in tqdm(entries, desc="Scoring", disable=not progress):
        try:
            scores.append(parse_score(client.ask(judge_prompt(entry, response_key))))
        except JudgeResponseError as exc:
            if "no score" not in str(exc):
                raise
            scores.append(None)
    return scores


# ---------------------------------------------------------------------------------------------------------------
# Judge-free metrics
# ---------------------------------------------------------------------------------------------------------------

_ARTICLES = {"a", "an", "the"}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on lower-cased word tokens: harmonic mean of LCS/len(candidate) and LCS/len(reference)."""
    cand, ref = _words(candidate), _words(reference)
    if not cand or not ref:
        return float(cand == ref)  # two empty texts agree; one empty text shares nothing
    lcs = lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the usual exact-match normalisation)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(word for word in text.split() if word not in _ARTICLES)


def exact_match(candidate: str, reference: str) -> bool:
    return normalize_answer(candidate) == normalize_answer(reference)


def judge_free_metrics(entries: Sequence[dict[str, Any]], response_key: str = "model_response",
                       short_answer_words: int = 5) -> dict[str, float]:
    """Mean ROUGE-L over all entries, and exact match over those whose reference has few words."""
    if not entries:
        raise ValueError("no entries to evaluate")
    rouge = [rouge_l(e[response_key], e["output"]) for e in entries]
    short = [e for e in entries if len(e["output"].split()) <= short_answer_words]
    matches = [exact_match(e[response_key], e["output"]) for e in short]
    return {
        "rouge_l": sum(rouge) / len(rouge),
        "exact_match": sum(matches) / len(matches) if matches else float("nan"),
        "n": len(entries),
        "n_short": len(short),
    }


# ---------------------------------------------------------------------------------------------------------------
# A stand-in server, for running the judge code path where no LLM server is available
# ---------------------------------------------------------------------------------------------------------------

def start_rouge_judge_server(host: str = "127.0.0.1", port: int = 0,
                             scorer: Callable[[str], str] | None = None) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``/v1/chat/completions`` from a background thread; return the server and its base URL.

    This is NOT a language model. By default it reads the reference and the graded answer out of a
    :func:`judge_prompt` and replies with ``round(100 * ROUGE-L)``, so notebooks and tests can run the full
    HTTP judge path offline. Call ``server.shutdown()`` when done.
    """
    scorer = scorer or _rouge_reply

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the name http.server requires)
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length))
            content = scorer(request["messages"][-1]["content"])
            reply = {"object": "chat.completion", "model": request.get("model", "rouge-l-stand-in"),
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content}}]}
            data = json.dumps(reply).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep notebooks and test logs quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def _rouge_reply(prompt: str) -> str:
    match = re.search(r"Reference answer:\n(.*?)\n\nAnswer to grade:\n(.*?)\n\nScore the answer", prompt, re.S)
    if match is None:
        return "I can only grade prompts made by judge_prompt()."
    return str(round(100 * rouge_l(match.group(2), match.group(1))))
