"""The book's KV-cache variants of its models (chapter 4's KV-cache bonus, chapter 5's Llama 3 and Qwen3 bonuses).

Each module mirrors a non-cached model of the book and adds a cache, so that a reader can put the two side by side:
``kv_cache.gpt2`` keeps its cache inside the attention modules; ``kv_cache.llama3`` and ``kv_cache.qwen3`` take
a :class:`~llms_from_scratch.kv_cache.utils.KVCache` that ``kv_cache.generate`` creates for each generation.
"""
