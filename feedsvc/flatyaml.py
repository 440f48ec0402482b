"""A release file of flat `key: "text"` and `key: ["text", ...]` lines, read without PyYAML.

`feedsvc synth --split` and many newsroom tools write one release a file this way (JSON
strings as YAML values). Such a file is taken apart by a regular expression and its values
decoded by the json module, both in C: about a third of what PyYAML's parser and composer
cost. What is built is what yamlsource.parse builds from the same text: the same mapping,
line and key lines, repeated keys included (tests/test_flatyaml.py checks it against PyYAML
for every kind of text). Anything else (another shape, a comment, a blank line, an escape
beyond \\" \\\\ \\n \\r \\t, a character YAML treats apart) is left to PyYAML, with its
located problems.
"""
from __future__ import annotations

import json
import re

from .yamlsource import LocatedMap

# Characters a double-quoted YAML scalar holds as themselves on one line: not a quote or a
# backslash, nor what the YAML reader refuses (control characters, surrogates, U+FFFE/F) or
# takes for a line break or byte order mark (NEL, U+2028, U+2029, U+FEFF).
_PLAIN = "[^\"\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]"
# Possessive (++, *+): a run of characters is never split again, so a text that fails to
# match fails at once, whatever its length.
_TEXT = f'"(?:{_PLAIN}++|\\\\["\\\\nrt])*+"'
# Key: a short lowercase name (a YAML simple key; see _NOT_TEXT for names that are not text).
_LINE = f"([a-z][a-z_]{{0,63}}): ({_TEXT}|\\[(?:{_TEXT}(?:, {_TEXT})*+)?+\\])"
_FILE = re.compile(f"(?:{_LINE}(?:\n|\\Z))++")
_LINES = re.compile(_LINE)
# Plain keys the dataset's YAML reads as null or a boolean, not as text.
_NOT_TEXT = frozenset({"null", "true", "false"})


def flat_document(raw: bytes) -> LocatedMap | None:
    """Return the mapping a flat file holds, as yamlsource.parse would; None if not flat."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if _FILE.fullmatch(text) is None:
        return None
    pairs = _LINES.findall(text)
    values = json.loads(f"[{','.join(value for _, value in pairs)}]")
    data = LocatedMap()
    data.line, data.key_lines, data.duplicates = 1, {}, []
    for line, ((key, _), value) in enumerate(zip(pairs, values, strict=True), 1):
        if key in _NOT_TEXT:
            return None
        if key in data.key_lines:
            data.duplicates.append((key, line))
        else:
            data.key_lines[key] = line
        data[key] = value
    return data
