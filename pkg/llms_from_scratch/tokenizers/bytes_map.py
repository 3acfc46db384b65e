"""GPT-2's reversible byte <-> printable-character map, used by every byte-level BPE vocabulary file.

``vocab.json``, ``merges.txt``, ``tokenizer.json`` and GGUF token lists write each byte as a printable
character (space becomes ``Ġ``, newline ``Ċ``) so tokens are valid text; this undoes that.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    # printable Latin-1 bytes map to themselves; the rest shift to code points from 256 up, in byte order
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, shift = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def token_bytes(token: str) -> bytes:
    """The bytes a byte-level BPE token string stands for."""
    table = char_to_byte()
    return bytes(table[c] for c in token)
