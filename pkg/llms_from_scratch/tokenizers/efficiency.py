"""How well a tokenizer compresses text: bytes per token and Rényi efficiency.

Bytes per token is the plainest measure: more bytes per token means shorter sequences for the same text. Rényi
efficiency (Zouhar et al., 2023, "Tokenization and the Noiseless Channel") looks at how evenly the tokens are
used instead: the Rényi entropy of order ``alpha`` of the unigram token distribution, divided by the log of the
vocabulary size, so 1.0 means every token is equally frequent. ``alpha = 2.5`` is the order the paper found to
track downstream quality best; larger orders weigh the most frequent tokens more.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping


def token_counts(texts: Iterable[str], encode: Callable[[str], list[int]]) -> Counter[int]:
    """How often each token id occurs when every text is encoded on its own."""
    counts: Counter[int] = Counter()
    for text in texts:
        counts.update(encode(text))
    return counts


def bytes_per_token(texts: Iterable[str], encode: Callable[[str], list[int]]) -> float:
    """UTF-8 bytes of all ``texts`` divided by the number of tokens ``encode`` makes of them (each text alone)."""
    n_bytes = n_tokens = 0
    for text in texts:
        n_bytes += len(text.encode("utf-8"))
        n_tokens += len(encode(text))
    if n_tokens == 0:
        raise ValueError("the texts encode to no tokens; pass at least one non-empty text")
    return n_bytes / n_tokens


def renyi_entropy(counts: Mapping[int, int], alpha: float = 2.5) -> float:
    """Rényi entropy of order ``alpha`` (in nats) of the distribution ``counts / sum(counts)``.

    ``H_alpha(p) = log(sum_i p_i ** alpha) / (1 - alpha)``; ``alpha = 1`` is the limit, Shannon entropy.
    """
    if alpha < 0:
        raise ValueError(f"alpha={alpha} is negative; Rényi entropy needs alpha >= 0")
    total = sum(counts.values())
    if total <= 0:
        raise ValueError("the token counts are empty; encode some text first")
    probs = [c / total for c in counts.values() if c > 0]
    if alpha == 1:
        return -sum(p * math.log(p) for p in probs)
    return math.log(sum(p**alpha for p in probs)) / (1 - alpha)


def renyi_efficiency(counts: Mapping[int, int], vocab_size: int, alpha: float = 2.5) -> float:
    """Rényi entropy of the token distribution divided by ``log(vocab_size)``, its largest possible value."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size={vocab_size}: efficiency needs a vocabulary of at least 2 tokens")
    return renyi_entropy(counts, alpha) / math.log(vocab_size)
