"""words() splits text as Unicode says: re's \\w+ after NFKC_Casefold, for every code point;
the index (tests/test_store_words.py) and a query fold alike."""
from __future__ import annotations

import re
import unicodedata

import pytest

from feedsvc.dataset.words import words

# Default_Ignorable_Code_Point, as Unicode 14's DerivedCoreProperties.txt lists it: the spec,
# written out here apart from the code's own table.
IGNORABLE = {*range(0x00AD, 0x00AE), 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5,
             *range(0x180B, 0x1810), *range(0x200B, 0x2010), *range(0x202A, 0x202F),
             *range(0x2060, 0x2070), 0x3164, *range(0xFE00, 0xFE10), 0xFEFF, 0xFFA0,
             *range(0xFFF0, 0xFFF9), *range(0x1BCA0, 0x1BCA4), *range(0x1D173, 0x1D17B),
             *range(0xE0000, 0xE1000)}


_REMOVED = dict.fromkeys(IGNORABLE)  # str.translate's table: each ignorable maps to nothing


def reference_words(text: str) -> list[str]:
    """Unicode's NFKC_Casefold (ignorables removed, NFKC, case folded), then re's \\w+."""
    kept = text.translate(_REMOVED)
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", kept).casefold())
    return re.findall(r"\w+", folded)


def test_words_are_the_runs_of_word_characters_in_every_script() -> None:
    """`q` and the index split text as re's \\w+ does after NFKC_Casefold: every character
    is tried, alone, inside a word and after one ("ß" is "ss", "Ａ" is "a", "ﬁ" is "fi")."""
    texts = {code: f"a{chr(code)}b {chr(code)} x{chr(code)}Straße" for code in range(0x110000)
             if not 0xD800 <= code < 0xE000}  # surrogates are not text
    codes = list(texts)
    # 256 texts a call, apart by a space: each begins and ends with a letter that nothing
    # across a space composes with, and folding, translating and \w+ go character by
    # character, so a chunk's words are its texts' words one after the other. The cost is the
    # characters', not a million calls'; a chunk that differs is tried text by text.
    for start in range(0, len(codes), 256):
        chunk = codes[start:start + 256]
        text = " ".join(texts[code] for code in chunk)
        if words(text) != reference_words(text):
            for code in chunk:
                assert words(texts[code]) == reference_words(texts[code]), hex(code)
            pytest.fail(f"the texts of {hex(chunk[0])}..{hex(chunk[-1])} agree alone, not together")


@pytest.mark.parametrize(("text", "query"), [
    ("Employment", "ＥＭＰＬＯＹＭＥＮＴ"), ("employment", "em\u00adploy\u200bment"),
    ("Straße", "STRASSE"), ("ﬁre", "fire"), ("Ⅻ", "xii"), ("café", "cafe\u0301")])
def test_the_index_and_a_query_fold_alike(text: str, query: str) -> None:
    assert words(query) == words(text) and len(words(text)) == 1 + text.count(" ")
