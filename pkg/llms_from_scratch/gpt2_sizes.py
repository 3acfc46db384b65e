"""OpenAI's four GPT-2 sizes: the project's one table of them.

Every other view derives from it: the zoo's configs (``models/gpt2.py``), chapter 5's ``gpt2_config``
(``gpt2_weights.py``), the FLOP tables (``flops.py``) and the size choices of the command line. It imports
nothing, so ``llms-from-scratch --help`` can list the sizes without loading PyTorch.
"""

# Width, depth and heads of each released size. Heads are 64 wide at every size (GPT2_HEAD_DIM).
GPT2_MODEL_CONFIGS: dict[str, dict[str, int]] = {
    "124M": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "355M": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "774M": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "1558M": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}
GPT2_MODEL_SIZES: tuple[str, ...] = tuple(GPT2_MODEL_CONFIGS)  # ("124M", "355M", "774M", "1558M")
GPT2_HEAD_DIM = 64

# The book's names of the sizes (chapter 4's exercise, chapter 5's model_configs).
GPT2_BOOK_NAMES = {
    "124M": "gpt2-small (124M)",
    "355M": "gpt2-medium (355M)",
    "774M": "gpt2-large (774M)",
    "1558M": "gpt2-xl (1558M)",
}
