"""The simplest tokenizer there is: one token per UTF-8 byte.

>>> tok = ByteTokenizer()
>>> tok.encode("héllo")        # 'é' is two bytes in UTF-8
[104, 195, 169, 108, 108, 111]

Ids 0-255 are the byte values themselves, so no vocabulary has to be learned and every text, in any script,
encodes without an unknown token. Optional special tokens (``<|endoftext|>``) take the ids from 256 up. The price
is length: a byte-level model sees three to four times as many positions as a BPE model for the same English text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import regex

END_OF_TEXT = "<|endoftext|>"


class ByteTokenizer:
    """Maps text to its UTF-8 bytes (ids 0-255) and back; special tokens, if any, get ids 256, 257, ..."""

    def __init__(self, special_tokens: Sequence[str] = ()):
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens {list(special_tokens)} repeat a token; list each one once")
        self.special_tokens: dict[str, int] = {s: 256 + i for i, s in enumerate(special_tokens)}
        self._special_bytes = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}

    @property
    def n_vocab(self) -> int:
        return 256 + len(self.special_tokens)

    def encode(self, text: str, allowed_special: Collection[str] = frozenset()) -> list[int]:
        """The UTF-8 bytes of ``text``; special tokens named in ``allowed_special`` become their single id.

        A special-token string that is not allowed is encoded as its ordinary bytes, so user text can never
        produce a special id by accident.
        """
        unknown = set(allowed_special) - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special names {sorted(unknown)}, which this tokenizer does not have; its "
                             f"special tokens are {sorted(self.special_tokens)}")
        if not allowed_special:
            return list(_utf8(text))
        # longest first, so a special token that contains another one wins
        pattern = "|".join(regex.escape(s) for s in sorted(allowed_special, key=len, reverse=True))
        ids: list[int] = []
        start = 0
        for match in regex.finditer(pattern, text):
            ids.extend(_utf8(text[start : match.start()]))
            ids.append(self.special_tokens[match.group()])
            start = match.end()
        ids.extend(_utf8(text[start:]))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes behind ``ids`` (a special token as the UTF-8 bytes of its text)."""
        out = bytearray()
        for i in ids:
            if 0 <= i < 256:
                out.append(i)
            elif i in self._special_bytes:
                out += self._special_bytes[i]
            else:
                raise ValueError(f"token id {i} is not in the vocabulary (ids 0-{self.n_vocab - 1})")
        return bytes(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; byte sequences that are not valid UTF-8 (a model's sample may cut a character in two)
        become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"the text holds {text[exc.start:exc.end]!r} at index {exc.start}, a lone surrogate that "
                         "UTF-8 cannot encode; read the text with errors='replace' or fix its source") from None
