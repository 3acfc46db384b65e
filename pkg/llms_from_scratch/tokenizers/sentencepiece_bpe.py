"""The SentencePiece BPE tokenizer of Llama 2 and Mistral 7B, written out by hand.

SentencePiece treats text as one stream of characters in which the space is an ordinary symbol, written
"▁" (U+2581). Encoding has three steps:

1. **Normalize**: put a "▁" in front of the text (the *dummy prefix*, so that the first word looks like
   every other word) and turn each space into "▁". Other whitespace (tabs, newlines) stays as it is.
2. **Merge**: start from single characters and repeatedly join the adjacent pair whose concatenation is the
   best piece. A ``tokenizer.model`` stores no merge list: any two pieces whose concatenation is a piece
   may merge, and the merged piece's *score* decides which pair goes first (highest score; the leftmost
   pair on a tie). Hugging Face's ``tokenizer.json`` stores the same merges as an ordered list instead.
3. **Byte fallback**: a character the vocabulary lacks becomes its UTF-8 bytes, one piece each
   (``<0x00>`` ... ``<0xFF>``), so no text is ever unknown.

Decoding reverses this: "▁" becomes a space, byte pieces are collected and decoded as UTF-8, and the
dummy prefix (the first leading space) is removed.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from .chat import ChatFormat, ChatTemplateMixin
from .sentencepiece_model import BPE, BYTE, CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED, read_sentencepiece_model

SPACE = "\u2581"  # "▁", SentencePiece's visible space
UNKNOWN_SURFACE = " \u2047 "  # what SentencePiece prints for an unknown piece: " ⁇ "


class SentencePieceBPETokenizer(ChatTemplateMixin):
    """Encode text to ids and back with a SentencePiece-style BPE vocabulary.

    ``pieces`` (index = id) and ``types`` (the ``sentencepiece_model`` constants) describe the vocabulary.
    Merge priority comes from ``scores`` (a ``tokenizer.model``: higher first) or from ``merges`` (a
    ``tokenizer.json``: earlier first). ``prefix`` says where the dummy "▁" goes: ``"always"`` (every run
    of text between special tokens, as SentencePiece and Llama 2's tokenizer.json do), ``"first"`` (only
    at the very start) or ``"never"``; ``prefix_if_spaced`` is False where a text that already starts with
    a space gets no second one (Hugging Face's Metaspace). ``split_words`` runs BPE on each "▁word"
    separately (Metaspace with ``split``); SentencePiece itself runs it on the whole text.
    """

    def __init__(self, name: str, pieces: list[str], types: list[int], *, scores: list[float] | None = None,
                 merges: Iterable[tuple[str, str]] | None = None, byte_fallback: bool = True,
                 prefix: str = "always", prefix_if_spaced: bool = True, remove_extra_whitespaces: bool = False,
                 split_words: bool = False, bos_piece: str = "<s>", eos_piece: str = "</s>",
                 unk_piece: str = "<unk>", pad_piece: str | None = None, unk_surface: str | None = UNKNOWN_SURFACE,
                 chat_format: ChatFormat | None = None) -> None:
        if (scores is None) == (merges is None):
            raise ValueError("give either the pieces' scores (tokenizer.model) or a merge list (tokenizer.json)")
        if prefix not in ("always", "first", "never"):
            raise ValueError(f"prefix must be 'always', 'first' or 'never', not {prefix!r}")
        self.name, self.pieces, self.types = name, list(pieces), list(types)
        self.byte_fallback, self.prefix, self.prefix_if_spaced = byte_fallback, prefix, prefix_if_spaced
        self.remove_extra_whitespaces, self.split_words = remove_extra_whitespaces, split_words
        self.chat_format, self.unk_surface = chat_format, unk_surface
        self.vocab_size = len(self.pieces)

        # pieces that text can turn into (and merges can produce); control, unknown and byte pieces are
        # reached only through their ids, never by matching text
        self.piece_to_id: dict[str, int] = {}
        for i, (piece, kind) in enumerate(zip(self.pieces, self.types)):
            if kind in (NORMAL, USER_DEFINED, UNUSED):
                self.piece_to_id.setdefault(piece, i)
        self.byte_ids: dict[int, int] = {}
        for i, (piece, kind) in enumerate(zip(self.pieces, self.types)):
            if kind == BYTE:
                self.byte_ids[int(piece[3:5], 16)] = i
        if byte_fallback and len(self.byte_ids) != 256:
            raise ValueError(f"{name}: byte fallback needs the 256 pieces <0x00>..<0xFF>, found {len(self.byte_ids)}")
        # user-defined pieces are matched whole in the text and never merged further (longest first)
        user = sorted((p for p, k in zip(self.pieces, self.types) if k == USER_DEFINED), key=len, reverse=True)
        self._user_re = re.compile("|".join(re.escape(p) for p in user)) if user else None

        self._score = None
        self._merge_rank: dict[tuple[str, str], int] | None = None
        if scores is not None:
            self._score = {p: scores[i] for p, i in self.piece_to_id.items()}
        else:
            self._merge_rank = {}
            for rank, (left, right) in enumerate(merges):
                self._merge_rank.setdefault((left, right), rank)

        def find(piece: str | None, kinds: tuple[int, ...]) -> int | None:
            for i, (p, kind) in enumerate(zip(self.pieces, self.types)):
                if p == piece and kind in kinds:
                    return i
            return None

        self.unk_id = find(unk_piece, (UNKNOWN,))
        self.bos_id = find(bos_piece, (CONTROL,))
        eos_id = find(eos_piece, (CONTROL,))
        self.eos_ids: tuple[int, ...] = (eos_id,) if eos_id is not None else ()
        self.pad_id = find(pad_piece, (CONTROL,)) if pad_piece else None
        # Hugging Face recognizes the control pieces (and <unk>) when they appear in text; see encode()
        self.special_tokens = {p: i for i, (p, k) in enumerate(zip(self.pieces, self.types)) if k in (CONTROL, UNKNOWN)}
        self._special_re = re.compile("|".join(re.escape(t) for t in sorted(self.special_tokens, key=len,
                                                                               reverse=True)))

    # ---------------------------------------------------------------- encoding

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, allow_special: bool = True) -> list[int]:
        """Token ids of ``text``. With ``allow_special`` the texts of special pieces (``<s>``, ``</s>``,
        ``<unk>``) become their ids, as in Hugging Face's tokenizers, and each run of ordinary text between
        them is encoded on its own; with ``allow_special=False`` the ids equal SentencePiece's ``encode``."""
        ids = [self.bos_id] if bos and self.bos_id is not None else []
        pos = 0
        if allow_special:
            for m in self._special_re.finditer(text):
                ids += self._encode_ordinary(text[pos : m.start()], at_start=pos == 0)
                ids.append(self.special_tokens[m.group()])
                pos = m.end()
        ids += self._encode_ordinary(text[pos:], at_start=pos == 0)
        if eos and self.eos_ids:
            ids.append(self.eos_ids[0])
        return ids

    def normalize(self, text: str, at_start: bool = True) -> str:
        """Step 1: the text as the merge loop sees it (dummy prefix, spaces as "▁")."""
        if self.remove_extra_whitespaces:  # strip, and collapse runs of spaces into one
            text = " ".join(w for w in text.split(" ") if w)
        if not text:
            return ""
        wants_prefix = self.prefix == "always" or (self.prefix == "first" and at_start)
        if wants_prefix and (self.prefix_if_spaced or not text.startswith(" ")):
            text = " " + text
        return text.replace(" ", SPACE)

    def _encode_ordinary(self, text: str, at_start: bool = True) -> list[int]:
        text = self.normalize(text, at_start)
        # Metaspace(split=True) cuts before every "▁"; SentencePiece merges across the whole text
        chunks = re.split(f"(?={SPACE})", text) if self.split_words else [text]
        ids: list[int] = []
        for chunk in chunks:
            for piece in self._bpe(chunk):
                piece_ids = self._piece_ids(piece)
                if piece_ids == [self.unk_id] and ids[-1:] == piece_ids:
                    continue  # without byte fallback, a run of unknown pieces becomes one unknown id
                ids += piece_ids
        return ids

    def _pair_priority(self, left: str, right: str) -> float | None:
        """Lower goes first; None when the two pieces cannot merge."""
        if self._merge_rank is not None:
            return self._merge_rank.get((left, right))
        score = self._score.get(left + right)
        return None if score is None else -score

    def _bpe(self, text: str) -> list[str]:
        """Step 2: merge the best adjacent pair until no pair merges. Returns the final pieces."""
        if not text:
            return []
        # initial symbols: user-defined pieces whole (frozen), every other character alone
        symbols: list[str] = []
        frozen: list[bool] = []
        pos = 0
        while pos < len(text):
            m = self._user_re.match(text, pos) if self._user_re is not None else None
            end = m.end() if m else pos + 1
            symbols.append(text[pos:end])
            frozen.append(m is not None)
            pos = end
        # a doubly linked list over the symbols: merging empties the right symbol and relinks around it
        prev = list(range(-1, len(symbols) - 1))
        nxt = list(range(1, len(symbols) + 1))
        nxt[-1] = -1
        queue: list[tuple[float, int, str, str]] = []  # (priority, left index, left piece, right piece)
        unused_parts: dict[str, tuple[str, str]] = {}

        def push(left: int) -> None:
            right = nxt[left] if left >= 0 else -1
            if left < 0 or right < 0 or frozen[left] or frozen[right]:
                return
            priority = self._pair_priority(symbols[left], symbols[right])
            if priority is not None:
                heapq.heappush(queue, (priority, left, symbols[left], symbols[right]))
                merged = symbols[left] + symbols[right]
                if self.types[self.piece_to_id.get(merged, 0)] == UNUSED:
                    unused_parts[merged] = (symbols[left], symbols[right])

        for i in range(len(symbols) - 1):
            push(i)
        while queue:
            _, left, left_piece, right_piece = heapq.heappop(queue)
            right = nxt[left]
            # skip entries made stale by an earlier merge
            if symbols[left] != left_piece or right < 0 or symbols[right] != right_piece:
                continue
            symbols[left] += symbols[right]
            symbols[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            push(prev[left])
            push(left)

        out: list[str] = []

        def emit(piece: str) -> None:
            # an "unused" piece may be merged through but not output: split it back into its two parts
            if piece in unused_parts and self.types[self.piece_to_id[piece]] == UNUSED:
                emit(unused_parts[piece][0])
                emit(unused_parts[piece][1])
            else:
                out.append(piece)

        i = 0
        while i >= 0:
            emit(symbols[i])
            i = nxt[i]
        return out

    def _piece_ids(self, piece: str) -> list[int]:
        """Step 3: a piece's id; a piece outside the vocabulary becomes byte pieces (or the unknown id)."""
        i = self.piece_to_id.get(piece)
        if i is not None:
            return [i]
        if self.byte_fallback:
            return [self.byte_ids[b] for b in piece.encode("utf-8")]
        if self.unk_id is None:
            raise ValueError(f"{self.name}: {piece!r} is not in the vocabulary and there is no unknown piece")
        return [self.unk_id]

    # ---------------------------------------------------------------- decoding

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        """Text of ``ids``. "▁" becomes a space, byte pieces are decoded together as UTF-8 (a byte that is
        not valid UTF-8 becomes U+FFFD), and the first leading space of the text (the dummy prefix) is
        removed. Control pieces print as their text (``<s>``) unless ``skip_special``; then the result
        equals SentencePiece's ``decode``. The unknown piece prints as ``unk_surface`` (SentencePiece's
        " ⁇ "), or like a control piece where that is None (Hugging Face's tokenizer.json)."""
        text: list[str] = []
        pending = bytearray()  # byte pieces not yet decoded
        # SentencePiece removes the dummy prefix from the first piece that prints something; with
        # remove_extra_whitespaces every leading "▁" goes
        strip_prefix = self.prefix != "never" or self.remove_extra_whitespaces
        at_start, prefix_seen = True, False
        for token_id in ids:
            token_id = int(token_id)
            if not 0 <= token_id < self.vocab_size:
                raise ValueError(f"token id {token_id} is not in the {self.name} vocabulary "
                                 f"(0..{self.vocab_size - 1})")
            kind, piece = self.types[token_id], self.pieces[token_id]
            if kind == BYTE:
                pending.append(int(piece[3:5], 16))
                continue
            if pending:
                text.append(utf8_with_replacement(bytes(pending)))
                pending.clear()
            if prefix_seen or any(text):
                at_start = False
            prefix_seen = False
            if kind == UNKNOWN and self.unk_surface is not None:
                text.append(self.unk_surface)
            elif kind in (CONTROL, UNKNOWN):
                text.append("" if skip_special else piece)
            else:
                if at_start and strip_prefix and piece.startswith(SPACE):
                    piece = piece[1:]
                    prefix_seen = not self.remove_extra_whitespaces
                text.append(piece.replace(SPACE, " "))
        if pending:
            text.append(utf8_with_replacement(bytes(pending)))
        return "".join(text)

    def is_special(self, token_id: int) -> bool:
        return self.types[token_id] in (CONTROL, UNKNOWN)


def utf8_with_replacement(data: bytes) -> str:
    """Decode UTF-8 one character at a time; each byte that starts no valid character becomes U+FFFD
    (SentencePiece's rule; Python's ``errors="replace"`` would merge a broken sequence into one U+FFFD)."""
    out, pos = [], 0
    while pos < len(data):
        lead = data[pos]
        length = 1 if lead < 0x80 else 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else (
            4 if 0xF0 <= lead <= 0xF4 else 0)
        try:
            if length == 0:
                raise UnicodeDecodeError("utf-8", data, pos, pos + 1, "invalid start byte")
            out.append(data[pos : pos + length].decode("utf-8"))
            pos += length
        except UnicodeDecodeError:
            out.append("\ufffd")
            pos += 1
    return "".join(out)


# ------------------------------------------------------------------- loading

def _chat_format(chat: str | None) -> ChatFormat | None:
    if chat is None:
        return None
    if chat not in ("llama2", "mistral"):
        raise ValueError(f"chat must be 'llama2' (Llama 2 chat), 'mistral' (Mistral instruct) or None, not {chat!r}")
    return ChatFormat(chat)


def sentencepiece_tokenizer(path: str | os.PathLike, *, chat: str | None = None) -> SentencePieceBPETokenizer:
    """The tokenizer of a Llama 2 / Mistral checkpoint from its ``tokenizer.model``, its ``tokenizer.json``,
    or a folder holding either. ``chat``: ``"llama2"`` for Llama 2 chat, ``"mistral"`` for Mistral instruct
    models, ``None`` (the default) for base models."""
    path = Path(path)
    if path.is_dir():
        for name in ("tokenizer.model", "tokenizer.json"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise ValueError(f"{path} has neither tokenizer.model nor tokenizer.json")
    if path.suffix == ".json":
        config_file = path.parent / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        return sentencepiece_json_tokenizer(json.loads(path.read_text(encoding="utf-8")), path.parent.name,
                                            config=config, chat_format=_chat_format(chat))
    spec = read_sentencepiece_model(path)
    if spec.model_type != BPE:
        raise ValueError(f"{path}: only SentencePiece BPE models are supported (Llama 2, Mistral), "
                         f"this one is model type {spec.model_type} (1 = unigram)")
    if spec.has_charsmap or spec.normalizer_name not in ("", "identity"):
        raise ValueError(f"{path}: the normalization rule {spec.normalizer_name!r} is not supported; only "
                         "'identity' (as in Llama 2 and Mistral)")
    if spec.treat_whitespace_as_suffix or not spec.escape_whitespaces:
        raise ValueError(f"{path}: whitespace must be escaped as a '▁' prefix (treat_whitespace_as_suffix off)")
    return SentencePieceBPETokenizer(
        path.parent.name or path.stem, spec.pieces, spec.types, scores=spec.scores,
        byte_fallback=spec.byte_fallback, prefix="always" if spec.add_dummy_prefix else "never",
        remove_extra_whitespaces=spec.remove_extra_whitespaces, bos_piece=spec.bos_piece,
        eos_piece=spec.eos_piece, unk_piece=spec.unk_piece, pad_piece=spec.pad_piece, chat_format=_chat_format(chat),
    )


def _json_whitespace_plan(spec: dict) -> dict:
    """Where a tokenizer.json puts the "▁": Llama 2's normalizer (Prepend + Replace) or a Metaspace
    pre-tokenizer (transformers' newer conversions)."""
    normalizer, pre = spec.get("normalizer"), spec.get("pre_tokenizer")
    steps = normalizer.get("normalizers", [normalizer]) if normalizer else []
    kinds = [s.get("type") for s in steps]
    if pre is None and kinds in (["Prepend", "Replace"], ["Replace"]):
        if kinds[0] == "Prepend" and steps[0].get("prepend") != SPACE:
            raise ValueError(f"unexpected Prepend normalizer {steps[0]}")
        if steps[-1].get("pattern", {}).get("String") != " " or steps[-1].get("content") != SPACE:
            raise ValueError(f"unexpected Replace normalizer {steps[-1]}")
        # the normalizer runs on each stretch of text between special tokens
        return {"prefix": "always" if kinds[0] == "Prepend" else "never"}
    if not steps and pre is not None and pre.get("type") == "Metaspace" and pre.get("replacement") == SPACE:
        scheme = pre.get("prepend_scheme") or ("always" if pre.get("add_prefix_space", True) else "never")
        return {"prefix": scheme, "prefix_if_spaced": False, "split_words": pre.get("split", True)}
    raise ValueError(f"tokenizer.json: normalizer {kinds} with pre-tokenizer {pre and pre.get('type')!r} is not a "
                     "SentencePiece layout this tokenizer knows (Llama 2's Prepend+Replace, or Metaspace)")


def sentencepiece_json_tokenizer(spec: dict, name: str, *, config: dict | None = None,
                                 chat_format: ChatFormat | None = None) -> SentencePieceBPETokenizer:
    """A :class:`SentencePieceBPETokenizer` from a parsed Hugging Face ``tokenizer.json`` (``spec``) and
    optionally its ``tokenizer_config.json`` (``config``, for the special pieces' names)."""
    config = config or {}
    model = spec["model"]
    vocab: dict[str, int] = model["vocab"]
    added = {t["content"]: t for t in spec.get("added_tokens", [])}
    pieces = [""] * (max([*vocab.values(), *(t["id"] for t in added.values())]) + 1)
    types = [NORMAL] * len(pieces)
    for piece, i in vocab.items():
        pieces[i] = piece
        if re.fullmatch(r"<0x[0-9A-F]{2}>", piece):
            types[i] = BYTE
    for piece, token in added.items():
        pieces[token["id"]] = piece
        types[token["id"]] = CONTROL if token.get("special") else USER_DEFINED

    def piece_name(key: str, default: str | None) -> str | None:
        value = config.get(key, default)
        return value.get("content") if isinstance(value, dict) else value

    unk = model.get("unk_token") or piece_name("unk_token", "<unk>")
    if unk in vocab or unk in added:
        types[vocab.get(unk, added.get(unk, {}).get("id"))] = UNKNOWN
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return SentencePieceBPETokenizer(
        name, pieces, types, merges=merges, byte_fallback=bool(model.get("byte_fallback")),
        **_json_whitespace_plan(spec), bos_piece=piece_name("bos_token", "<s>"),
        eos_piece=piece_name("eos_token", "</s>"), unk_piece=unk, pad_piece=piece_name("pad_token", None),
        unk_surface=None, chat_format=chat_format,
    )

