"""The dataset: Site, Topic and Release records, loaded from YAML and validated strictly."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .problems import DatasetError, Problem

# Re-exported: the records are part of this module's interface.
from .records import Release, Site, Topic, country_code, read_release, read_site, read_topic
from .yamlsource import DEFAULT_MAX_FILE_BYTES, LocatedMap, SourceFile, parse

__all__ = ["Dataset", "DatasetError", "Problem", "Release", "Site", "Topic", "load_dataset"]

BUNDLE_KEYS = frozenset({"site", "topics", "releases"})
# Fediverse handles share one namespace (docs/fediverse.md): `all`, country codes, topic slugs.
SITE_HANDLE = "all"
_HANDLE_TAKEN = ("topic slug {slug!r} is {what} fediverse handle (@{slug}@...): handles of "
                 "the site (all), countries (their codes) and topics share one namespace; "
                 "choose another slug")


@dataclass(frozen=True, slots=True)
class Dataset:
    """A complete, valid dataset, identified by the content hash of its files."""

    site: Site
    topics: Mapping[str, Topic]
    releases: Sequence[Release]
    version: str
    source: str


@dataclass
class Parts:
    """What the files hold, gathered before releases can be checked against the vocabulary."""

    sites: list[tuple[SourceFile, LocatedMap]]
    topics: list[tuple[SourceFile, LocatedMap]]
    releases: list[tuple[SourceFile, LocatedMap]]


def _sort_bundle(src: SourceFile, doc: LocatedMap, parts: Parts, problems: list[Problem]) -> None:
    for key, kind in (("site", None), ("topics", parts.topics), ("releases", parts.releases)):
        if key not in doc:
            continue
        value = doc[key]
        if kind is None:
            if isinstance(value, LocatedMap):
                parts.sites.append((src, value))
                continue
        elif isinstance(value, list) and all(isinstance(v, LocatedMap) for v in value):
            kind.extend((src, v) for v in value)
            continue
        shape = "a mapping" if kind is None else "a list of mappings"
        problems.append(Problem(src.name, doc.key_lines[key], None, key, f"must be {shape}"))


def site_of(parts: Parts, problems: list[Problem]) -> Site | None:
    """Read the one site mapping gathered from every file."""
    if len(parts.sites) != 1:
        where = ", ".join(f"{s.name}:{m.line}" for s, m in parts.sites) or "none found"
        problems.append(Problem(parts.sites[-1][0].name if parts.sites else "(dataset)", None,
                                None, "site", f"exactly one site mapping is needed ({where})"))
        return None
    src, mapping = parts.sites[0]
    return read_site(src.name, mapping, problems)


def topics_of(parts: Parts, problems: list[Problem]) -> dict[str, Topic]:
    """Read the topic vocabulary gathered from every file, in path order."""
    topics: dict[str, Topic] = {}
    for src, mapping in parts.topics:
        topic = read_topic(src.name, mapping, problems)
        if topic is None:
            continue
        if topic.slug in topics:
            problems.append(Problem(src.name, mapping.line, None, "slug",
                                    f"topic {topic.slug!r} is defined twice"))
        elif topic.slug == SITE_HANDLE or country_code(topic.slug) is not None:
            problems.append(Problem(src.name, mapping.line, None, "slug", _HANDLE_TAKEN.format(
                slug=topic.slug, what="the whole site's" if topic.slug == SITE_HANDLE
                else "a country's")))
        else:
            topics[topic.slug] = topic
    if not parts.topics:
        problems.append(Problem("(dataset)", None, None, "topics", "no topic vocabulary found"))
    return topics


def parse_file(name: str, raw: bytes, problems: list[Problem]) -> Parts:
    """Parse one file and sort what it holds into site, topics and releases."""
    src = parse(name, raw)
    parts = Parts([], [], [])
    if isinstance(src, Problem):
        problems.append(src)
    elif not isinstance(doc := src.document, LocatedMap):
        what = "an empty file" if doc is None else f"a {type(doc).__name__}"
        problems.append(Problem(name, 1, None, None, "expected a release, or a mapping of "
                                f"site/topics/releases; found {what}"))
    elif doc.keys() and doc.keys() <= BUNDLE_KEYS:
        _sort_bundle(src, doc, parts, problems)
    else:
        parts.releases.append((src, doc))
    return parts


Ids = tuple[tuple[str, int | None], ...]


def file_releases(parts: Parts, site: Site, topics: Mapping[str, Topic],
                  problems: list[Problem]) -> tuple[tuple[Release, ...], Ids]:
    """Validate one file's releases; return them and every id they name, with its line."""
    releases: list[Release] = []
    ids: list[tuple[str, int | None]] = []
    zone = site.zone
    for number, (src, mapping) in enumerate(parts.releases, 1):
        release = read_release(src.name, mapping, number, site, topics, zone, problems)
        rid = mapping.get("id")
        if isinstance(rid, str):
            ids.append((rid, mapping.key_lines.get("id")))
        if release is not None:
            releases.append(release)
    return tuple(releases), tuple(ids)


def duplicate_ids(files: Iterable[tuple[str, Ids]]) -> list[Problem]:
    """Report each id used again, in path order, with where it was first used."""
    first: dict[str, tuple[str, int | None]] = {}
    problems = []
    for name, ids in files:
        for rid, line in ids:
            seen = first.setdefault(rid, (name, line))
            if seen != (name, line):
                problems.append(Problem(name, line, rid, "id",
                                        f"duplicate id, first used at {seen[0]}:{seen[1]}"))
    return problems


def newest_first(releases: Iterable[Release]) -> tuple[Release, ...]:
    """Sort releases newest first (ties by id, descending): the order every feed is in."""
    return tuple(sorted(releases, key=lambda r: (r.published, r.id), reverse=True))


def load_dataset(path: str | Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Dataset:
    """Load and validate every file under `path`; raise DatasetError listing every problem."""
    from .loader import assemble, load  # it builds on this module's per-file steps

    return assemble(load(Path(path), max_file_bytes), str(Path(path)))
