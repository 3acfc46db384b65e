"""Running models for people and programs: KV-cache generation, the OpenAI-compatible server, a background server.

* :mod:`.generation`: ``generate`` and ``stream`` with a KV cache; :mod:`.sampling`: :class:`~.sampling.SamplingParams`
  and the checks every caller shares (values, context length);
* :mod:`.server`: the HTTP app behind ``llms-from-scratch serve`` (Starlette on uvicorn, the ``serve`` extra), with
  :mod:`.ollama` (the Ollama-compatible routes), :mod:`.chat_service` (requests to token ids and back),
  :mod:`.jobs` (one worker, a bounded queue, cancellation), :mod:`.replies` (whole and streamed answers),
  :mod:`.protocol` (header deadlines and sizes uvicorn does not enforce), :mod:`.limits` and :mod:`.http_json`;
* :mod:`.page`: the chat page at ``/`` (the files in ``static/``); :mod:`.classifier`: a chapter 6 classifier behind
  ``POST /v1/classify``; :mod:`.book_models`: chapter 5 and 7 models as chat models (the zoo's decoder, GPT-2's
  tokenizer with the prompt layouts they were trained on);
* :mod:`.background_server`: that server in a child process for the length of a ``with`` block.
"""
