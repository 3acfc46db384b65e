"""Running models for people and programs: KV-cache generation, the OpenAI-compatible server, a background server.

* :mod:`.generation`: ``generate`` and ``stream`` with a KV cache, and :class:`~.generation.SamplingParams`;
* :mod:`.server`: the HTTP server behind ``llms-from-scratch serve``;
* :mod:`.background_server`: that server in a child process for the length of a ``with`` block.
"""
