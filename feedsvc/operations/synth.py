"""Write realistic synthetic archives of press releases, the same bytes for the same seed.

With `lifecycle`, some releases also get what the newsroom's life of a release adds (drafts,
withdrawals with notices, corrections, pictures and attachments, local below media/ and
remote): drawn from a second generator, so the plain fields are the same bytes either way.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..config import BUNDLED_DATA
from ..dataset import Site, Topic, load_dataset
from ..dataset.media import MEDIA_DIR
from ..feeds.feed import country_name

SEED = 2004
FIRST_DAY, YEARS = date(2004, 10, 1), 20
# Asia and the Pacific first, as in the office's own archive; a few places elsewhere.
COUNTRIES: Mapping[str, tuple[int, str]] = {
    "TH": (14, "BANGKOK"), "KH": (9, "PHNOM PENH"), "CN": (9, "BEIJING"), "IN": (9, "NEW DELHI"),
    "VN": (8, "HANOI"), "ID": (8, "JAKARTA"), "PH": (7, "MANILA"), "LA": (5, "VIENTIANE"),
    "MM": (5, "YANGON"), "BD": (5, "DHAKA"), "PK": (5, "ISLAMABAD"), "NP": (4, "KATHMANDU"),
    "LK": (4, "COLOMBO"), "MN": (3, "ULAANBAATAR"), "TL": (3, "DILI"), "KR": (3, "SEOUL"),
    "JP": (3, "TOKYO"), "MY": (3, "KUALA LUMPUR"), "AF": (2, "KABUL"), "FJ": (2, "SUVA"),
    "PG": (2, "PORT MORESBY"), "SG": (2, "SINGAPORE"), "AU": (1, "CANBERRA"),
    "CH": (1, "GENEVA"), "US": (1, "WASHINGTON"), "GB": (1, "LONDON"),
}
_CODES, _WEIGHTS = list(COUNTRIES), [w for w, _ in COUNTRIES.values()]
TOPIC_PHRASES: Mapping[str, tuple[str, ...]] = {
    "gender-equality": ("equal pay for women", "women workers' rights", "maternity protection",
                        "women entrepreneurs", "gender equality at work"),
    "trafficking-and-child-labour": ("the trafficking of women and children",
                                     "the worst forms of child labour", "child domestic workers",
                                     "anti-trafficking data centres", "children in hazardous work"),
    "occupational-safety-and-health": ("safety in small coal mines", "safe home work",
                                       "safety on construction sites", "chemical safety",
                                       "health and safety standards"),
    "social-security": ("social security coverage", "health insurance for informal workers",
                        "pensions for older workers", "unemployment insurance",
                        "a social protection floor"),
    "labour-migration": ("the protection of migrant workers", "recruitment fees",
                         "labour migration for development", "returning migrant workers",
                         "remittances and skills"),
    "working-conditions": ("minimum wages", "working time", "decent work in garment factories",
                           "conditions of employment", "wages and productivity"),
    "social-dialogue": ("tripartite cooperation", "collective bargaining",
                        "labour law reform", "freedom of association", "dispute settlement"),
}
ACTORS = ("ILO specialists", "Government officials", "Employers' organizations", "Trade unions",
          "Labour ministers", "Experts", "Young workers", "Community leaders")
VERBS = ("discuss", "review progress on", "call for action on", "launch a campaign on",
         "agree on ways to improve", "look at new strategies for", "strengthen", "promote")
EVENTS = ("workshop", "regional meeting", "conference", "training programme", "forum",
          "tripartite consultation")
REPORTS = ("report", "survey", "study", "guide", "handbook")
FINDINGS = ("shows uneven progress on", "finds large gaps in", "recommends ways to extend",
            "calls for better data on")


def _phrase(rng: random.Random, topic: Topic) -> str:
    return rng.choice(TOPIC_PHRASES.get(topic.slug, (topic.label.lower(),)))


def _place(countries: list[str]) -> tuple[str, str]:
    """Return the city and the region a release happens in."""
    if not countries:
        return "Bangkok", "Asia and the Pacific"
    names = [country_name(c) for c in countries]
    region = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return COUNTRIES[countries[0]][1].title(), region


def _title(rng: random.Random, phrase: str, city: str, region: str) -> str:
    form = rng.randrange(4)
    if form == 0:
        return f"{rng.choice(ACTORS)} {rng.choice(VERBS)} {phrase} in {city}"
    if form == 1:
        return f"{rng.choice(EVENTS).capitalize()} on {phrase} opens in {city}"
    if form == 2:
        return f"New ILO {rng.choice(REPORTS)} on {phrase} in {region}"
    return f"{city} to host talks on {phrase}"


def _summary(rng: random.Random, phrase: str, other: str, city: str, region: str) -> str:
    event = rng.choice(EVENTS)
    sentences = [
        f"{rng.choice(ACTORS)} {rng.choice(VERBS)} {phrase} at a {event} held in {city} ({region}).",
        (f"The {event} brings together representatives of governments, workers' and "
         "employers' organizations."),
        f"A new ILO {rng.choice(REPORTS)} {rng.choice(FINDINGS)} {other}.",
    ]
    return " ".join(sentences[: rng.randint(1, 3)])


def _when(rng: random.Random, day: date) -> str:
    if rng.random() < 0.15:
        return f"{day.isoformat()}T{rng.randint(7, 18):02d}:{rng.choice((0, 15, 30, 45)):02d}:00+07:00"
    return day.isoformat()


def _release(rng: random.Random, rid: str, day: date, topics: list[Topic],
             kind: str) -> dict[str, Any]:
    countries = sorted(set(rng.choices(_CODES, _WEIGHTS, k=rng.choices((0, 1, 2, 3),
                                                                       (10, 60, 20, 10))[0])))
    chosen = rng.sample(topics, rng.choices((1, 2, 3), (65, 28, 7))[0])
    city, region = _place(countries)
    phrase, other = _phrase(rng, chosen[0]), _phrase(rng, chosen[-1])
    release: dict[str, Any] = {"id": rid, "type": kind, "title": _title(rng, phrase, city, region),
                               "published": _when(rng, day)}
    if rng.random() < 0.12:
        release["updated"] = (day + timedelta(days=rng.randint(1, 60))).isoformat()
    if countries and rng.random() < 0.4:
        release["dateline"] = COUNTRIES[countries[0]][1]
    release["countries"] = countries
    release["topics"] = [t.slug for t in chosen]
    release["summary"] = _summary(rng, phrase, other, city, region)
    if rng.random() < 0.25:
        release["body"] = "\n\n".join(_summary(rng, _phrase(rng, t), other, city, region)
                                      for t in chosen + chosen[:1])
    if rng.random() < 0.3:
        release["url"] = f"https://www.ilo.org/asia/media-centre/news/WCMS_{100000 + rng.randrange(900000)}/"
    return release


# Files below media/ that a lifecycle archive's releases name: (path, bytes), the same every time.
MEDIA_FILES: tuple[tuple[str, bytes], ...] = tuple(
    [(f"photos/synth-{n}.jpg", b"\xff\xd8\xff\xe0" + bytes(range(n, 256)) * 4) for n in range(4)]
    + [(f"documents/synth-{n}.pdf", b"%PDF-1.4\n" + f"synthetic {n}\n".encode() * 50)
       for n in range(3)])
CORRECTION_NOTES = ("A figure in the second paragraph was corrected.",
                    "The name of a participating organization was misspelt.",
                    "The date of the event was corrected.")
WITHDRAWAL_NOTES = ("The figures were provisional and have been revised.",
                    "This release was issued in error.")


def _medium(rng: random.Random, kind: str, text_key: str, text: str) -> dict[str, Any]:
    local = [path for path, _ in MEDIA_FILES if path.startswith(kind)]
    if rng.random() < 0.6:
        return {"src": rng.choice(local), text_key: text}
    number, ext = 100000 + rng.randrange(900000), "jpg" if kind == "photos" else "pdf"
    return {"src": f"https://www.ilo.org/media/{number}/download.{ext}", text_key: text,
            "type": "image/jpeg" if kind == "photos" else "application/pdf",
            "length": rng.randint(10_000, 5_000_000)}


def _lifecycle(rng: random.Random, release: dict[str, Any], day: date) -> None:
    """Add drafts, withdrawals, corrections and media to about one release in six."""
    roll = rng.random()
    if roll < 0.01:
        release["draft"] = True
    elif roll < 0.03:
        gone = day + timedelta(days=rng.randint(1, 400))
        release["withdrawn"] = f"{gone.isoformat()}T{rng.randint(8, 17):02d}:00:00+07:00"
        if rng.random() < 0.8:
            release["withdrawn_note"] = rng.choice(WITHDRAWAL_NOTES)
    if rng.random() < 0.04:
        later = sorted(rng.sample(range(1, 90), rng.randint(1, 2)))
        release["corrections"] = [{"date": (day + timedelta(days=d)).isoformat(),
                                   "note": rng.choice(CORRECTION_NOTES)} for d in later]
    if rng.random() < 0.08:
        release["image"] = _medium(rng, "photos", "alt", f"Participants at the {release['id']} event")
    if rng.random() < 0.05:
        release["attachments"] = [_medium(rng, "documents", "title", f"Annex {n}")
                                  for n in range(1, rng.randint(1, 2) + 1)]


def releases(count: int, site: Site, topics: Mapping[str, Topic], seed: int = SEED,
             lifecycle: bool = False) -> Iterator[dict[str, Any]]:
    """Yield `count` release mappings, oldest first, spread over twenty years."""
    rng, life = random.Random(seed), random.Random(seed + 1) if lifecycle else None
    span = (date(FIRST_DAY.year + YEARS, FIRST_DAY.month, FIRST_DAY.day) - FIRST_DAY).days
    days = sorted(FIRST_DAY + timedelta(days=rng.randrange(span)) for _ in range(count))
    vocabulary, kind = sorted(topics.values(), key=lambda t: t.slug), next(iter(site.types))
    per_year: dict[int, int] = {}
    for day in days:
        per_year[day.year] = number = per_year.get(day.year, 0) + 1
        release = _release(rng, f"pr-{day.year}-{number:05d}", day, vocabulary, kind)
        if life is not None:
            _lifecycle(life, release, day)
        yield release


def _yaml_lines(release: Mapping[str, Any]) -> list[str]:
    # JSON strings and lists are valid YAML flow scalars, and far faster to write than yaml.dump.
    return [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in release.items()]


def _head(site: Site, topics: Mapping[str, Topic]) -> dict[str, Any]:
    return {
        "site": {"title": site.title, "subtitle": site.subtitle, "publisher": site.publisher,
                 "language": site.language, "timezone": site.timezone,
                 "tag_authority": site.tag_authority, "types": dict(site.types)},
        "topics": [{"slug": t.slug, "label": t.label, "description": t.description}
                   for t in topics.values()],
    }


def _dump(head: Mapping[str, Any], out: TextIO) -> None:
    yaml.safe_dump(dict(head), out, sort_keys=False, allow_unicode=True, width=100)


def _write_media(root: Path) -> None:
    for name, content in MEDIA_FILES:
        path = root / MEDIA_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def write_archive(count: int, out: str | Path, *, seed: int = SEED, split: bool = False,
                  lifecycle: bool = False) -> Path:
    """Write `count` releases with the bundled site and topics: one bundle file, or a directory.

    With `lifecycle`, also the media/ files the releases name, beside the bundle or in the
    directory."""
    bundled = load_dataset(BUNDLED_DATA)
    site, topics, target = bundled.site, bundled.topics, Path(out)
    head = _head(site, topics)
    if lifecycle:
        _write_media(target if split else target.parent)
    if not split:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as bundle:
            _dump(head, bundle)
            bundle.write("releases:\n")
            for release in releases(count, site, topics, seed, lifecycle):
                bundle.write("  - " + "\n    ".join(_yaml_lines(release)) + "\n")
        return target
    (target / "releases").mkdir(parents=True, exist_ok=True)
    for name in ("site", "topics"):
        with (target / f"{name}.yaml").open("w", encoding="utf-8") as part:
            _dump({name: head[name]}, part)
    for release in releases(count, site, topics, seed, lifecycle):
        path = target / "releases" / f"{release['id']}.yaml"
        path.write_text("\n".join(_yaml_lines(release)) + "\n", encoding="utf-8")
    return target
