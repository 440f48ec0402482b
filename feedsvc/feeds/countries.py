"""What to tell a reader who named a country by something other than its code."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import pycountry

# A name or code worth searching for: letters (any script), spaces, dots, hyphens and
# apostrophes, at most 40 of them (the longest common name, "Saint Vincent and the Grenadines",
# is 32). Anything else is not a country name, and searching for it costs the same ~10 ms.
_SEARCHABLE = re.compile(r"[^\W\d_][\w .'’-]{0,39}")
SUGGESTIONS = 3


def _named(country: Any, text: str) -> bool:
    """Tell whether `text` is in one of the country's own names, or is their initials (UK)."""
    for field in ("name", "official_name", "common_name"):
        name = getattr(country, field, None)
        if name and (text in name.casefold()
                     or text == "".join(c for c in name if c.isupper()).casefold()):
            return True
    return False


@lru_cache(maxsize=1024)  # a fuzzy search reads every country and subdivision name
def _search(text: str) -> tuple[tuple[str, str], ...]:
    try:
        found = pycountry.countries.search_fuzzy(text)
    except LookupError:
        return ()
    # A code-like text matches inside any subdivision's name (zz: Abruzzo, Italy): only a
    # country it names, or abbreviates, is worth suggesting.
    if len(text) <= 3:
        found = [c for c in found if _named(c, text)]
    return tuple((c.alpha_2, c.name) for c in found[:SUGGESTIONS])


def suggestions(text: str) -> tuple[tuple[str, str], ...]:
    """Return the codes and names of the countries `text` most likely means, best first."""
    cleaned = " ".join(text.split()).casefold()
    if not _SEARCHABLE.fullmatch(cleaned):
        return ()
    return _search(cleaned)


def unknown_country(text: str, example: str) -> str:
    """Return the message of a 404 for `text`, no country code: with the likely codes."""
    found = suggestions(text)
    said = f"No such country {text[:40]!r}: use a lowercase ISO 3166-1 alpha-2 code, e.g. {example}."
    if not found:
        return said
    named = [f"{code.lower()} ({name})" for code, name in found]
    return f"{said} Did you mean {' or '.join(named)}?"
