"""The words `q` matches, in the index and in a query alike: one definition for both."""
from __future__ import annotations

from bisect import bisect_right
from unicodedata import normalize

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): characters a reader does
# not see (soft hyphen, zero-width space and joiners, bidi marks, variation selectors, tags).
# Removed, not turned into spaces: "em<soft hyphen>ployment" is the word "employment".
_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
              (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
              (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
              (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
              (0xE0000, 0xE0FFF))
# Where each range starts and where it has ended: a code falls inside one when an odd number of
# these edges are at or below it (a binary search, not a scan of every range per character).
_EDGES = tuple(edge for low, high in _IGNORABLE for edge in (low, high + 1))


class _Spaces(dict[int, int | None]):
    """str.translate's table: a word character (what the regex \\w matches: alphanumeric, or
    "_") stays, an ignorable one goes, any other becomes a space. Filled as characters are
    met; kept only below _KEPT, so that text of every script cannot grow it without bound."""

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        found: int | None = code if char.isalnum() or char == "_" else 32
        if bisect_right(_EDGES, code) % 2:  # above _KEPT (CJK) this runs for every character
            found = None
        if code < _KEPT:
            self[code] = found
        return found


_KEPT = 0x3000  # Latin, Greek, Cyrillic, Arabic, Indic, Thai, Lao, Georgian...: 12,288 at most
_WORD_TABLE = _Spaces()


def fold(text: str) -> str:
    """Return text as `q` compares it: compatibility forms unified (NFKC: full-width "Ａ" is
    "A", "ﬁ" is "fi") and case folded ("ß" is "ss"), as Unicode's NFKC_Casefold does."""
    if text.isascii():  # nearly all text: NFKC changes nothing there
        return text.casefold()
    # NFKC again after casefold: folding can undo the composed form ("ǰ" folds to j + caron).
    return normalize("NFKC", normalize("NFKC", text).casefold())


# The same table for ASCII text (nearly all, and no ignorable character is ASCII), as bytes,
# folding case too (ASCII's casefold is lower): bytes.translate looks each byte up in a C
# array, str.translate calls into the dict.
_ASCII_TABLE = bytes(ord(chr(_WORD_TABLE[code] or 32).lower()) for code in range(128)
                     ).ljust(256, b" ")


def words(text: str) -> list[str]:
    """Split text into the folded words that `q` matches: runs of word characters (as re's
    \\w+ finds them; translate and split cost half of findall), invisible characters removed."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_TABLE).decode("ascii").split()
    return fold(text).translate(_WORD_TABLE).split()
