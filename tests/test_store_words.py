"""The store's word index splits as `q` does: FTS5 over words() gives words() back."""
from __future__ import annotations

import sqlite3

from feedsvc.dataset.db import TOKENIZER
from feedsvc.dataset.selecting import country_tag, topic_tag
from feedsvc.dataset.words import words


def test_the_word_index_tokenizer_gives_words_back_for_every_code_point() -> None:
    """Each character alone, inside a word and after one (as tests/test_words.py tries
    words()): every character words() can give is a token character of FTS5's tokenizer, left
    as it is, so the tokens of words() joined by spaces are words() itself."""
    codes = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    given: set[str] = set()
    for at in range(0, len(codes), 256):  # 256 texts a call: see tests/test_words.py
        text = " ".join(f"a{chr(c)}b {chr(c)} x{chr(c)}Straße" for c in codes[at:at + 256])
        given.update("".join(words(text)))
    db = sqlite3.connect(":memory:")
    # detail=full here only, to read each token back in order (fts5vocab instance).
    db.execute(f'CREATE VIRTUAL TABLE t USING fts5(words, tokenize="{TOKENIZER}")')
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
    ordered = sorted(given)
    chunks = [ordered[at:at + 256] for at in range(0, len(ordered), 256)]
    with db:
        db.executemany("INSERT INTO t(rowid, words) VALUES (?, ?)",
                       ((n, " ".join(f"a{ch}b" for ch in chunk)) for n, chunk in enumerate(chunks)))
    tokens: dict[int, list[str]] = {}
    for term, doc in db.execute("SELECT term, doc FROM v ORDER BY doc, offset"):
        tokens.setdefault(doc, []).append(term)
    differ = [ch for n, chunk in enumerate(chunks) if tokens.get(n) != [f"a{ch}b" for ch in chunk]
              for ch in sorted(set(chunk) - {t[1:-1] for t in tokens.get(n, [])})]
    assert len(given) > 100_000 and not differ, [hex(ord(ch)) for ch in differ[:10]]


def test_tags_are_never_words_and_one_token_each() -> None:
    db = sqlite3.connect(":memory:")
    db.execute(f'CREATE VIRTUAL TABLE t USING fts5(words, tokenize="{TOKENIZER}")')
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
    tags = [country_tag("TH"), topic_tag("social-security"), topic_tag("a.b_c")]
    assert all(words(tag) != [tag] for tag in tags)
    with db:
        db.execute("INSERT INTO t(rowid, words) VALUES (1, ?)", (" ".join(tags),))
    assert [term for (term,) in db.execute("SELECT term FROM v ORDER BY offset")] == tags
