"""The book's batched KV-cache generation for Qwen3: several prompts of different lengths in one batch.

Prompts are padded on the left to a common length, so that every row's newest token sits in the last column
and one forward pass extends all rows at once. ``qwen3.Qwen3Model`` gives each row its own positions (a row's
padding has negative positions and is never attended to), ``utils.KVCache`` keeps each row's keys and values,
and ``generate.generate_text_simple`` produces, for every row, the tokens that row alone would have produced.
"""
