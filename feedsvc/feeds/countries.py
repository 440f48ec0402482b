"""What to tell a reader who named a country by something other than its code."""
from __future__ import annotations

import re
import unicodedata

import pycountry

# A name or code worth searching for: letters (any script), spaces, dots, hyphens and
# apostrophes, at most 40 of them (the longest common name, "Saint Vincent and the Grenadines",
# is 32). Anything else is not a country name, and is not searched for.
_SEARCHABLE = re.compile(r"[^\W\d_][\w .'’-]{0,39}")
SUGGESTIONS = 3


def _folded(text: str) -> str:
    """Return `text` in lowercase without its accents (Côte -> cote)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _names(country: pycountry.db.Country) -> tuple[str, ...]:
    """Return the country's own names, folded: name, official and common name, and initials."""
    names = [getattr(country, field, None) for field in ("name", "official_name", "common_name")]
    full = [_folded(name) for name in names if name]
    initials = [_folded("".join(c for c in name if c.isupper())) for name in names if name]
    return (*full, *initials)


# The countries only, never their subdivisions (pycountry's search_fuzzy reads all 5,000 of
# them: a worker's first unknown country cost ~100 ms and 5 MB, and each search ~10 ms).
# Built with the module, in gunicorn's master, and shared by its workers.
_COUNTRIES = tuple((c.alpha_2, c.name, (c.alpha_2.lower(), c.alpha_3.lower()), _names(c))
                   for c in pycountry.countries)


def _score(text: str, codes: tuple[str, ...], names: tuple[str, ...]) -> int:
    """Score how well `text` names a country: a code or whole name 50, within a name less the
    later it starts; 0 not at all."""
    if text in codes or text in names:
        return 50
    return max((max(5, 30 - 2 * name.find(text)) for name in names if text in name), default=0)


def suggestions(text: str) -> tuple[tuple[str, str], ...]:
    """Return the codes and names of the countries `text` most likely means, best first."""
    cleaned = _folded(" ".join(text.split()))
    if not _SEARCHABLE.fullmatch(cleaned):
        return ()
    scored = [(-score, code, name) for code, name, codes, names in _COUNTRIES
              if (score := _score(cleaned, codes, names))]
    return tuple((code, name) for _, code, name in sorted(scored)[:SUGGESTIONS])


def unknown_country(text: str, example: str) -> str:
    """Return the message of a 404 for `text`, no country code: with the likely codes."""
    found = suggestions(text)
    said = f"No such country {text[:40]!r}: use a lowercase ISO 3166-1 alpha-2 code, e.g. {example}."
    if not found:
        return said
    named = [f"{code.lower()} ({name})" for code, name in found]
    return f"{said} Did you mean {' or '.join(named)}?"
