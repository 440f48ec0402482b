"""The index of a load made in child processes, merged from their runs without making a release.

Each loading process (fanout.py) sorts its own releases newest first, pickles each as a record
(stored.py), splits their titles and summaries into words and fills its own posting lists, in
its own order. The serving process merges the runs' sort keys into the dataset's order, joins
the records into one store in that order, and relabels and joins the runs' posting lists: it
makes no release, as a restart from the snapshot makes none. The result equals what
index.build_index makes of the same releases (tests/test_fanout.py compares them).
"""
from __future__ import annotations

import io
import pickle
import threading
from array import array
from collections.abc import ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from . import Dataset, Release, newest_first
from .facts import Special, special
from .index import KEYS, LABEL, Index, spacing
from .loader import FileEntry, Key
from .stored import Store, StoredReleases, record

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
Postings = dict[str, "array[int]"]


@dataclass(frozen=True)
class Run:
    """What one loading process sends of its releases, all in its own order (newest first)."""

    blob: bytes  # the records, one after the other
    offsets: array[int]  # where each record starts, and the end
    instants: list[int]  # each release's `published`, in microseconds since 1970 (exact)
    ids: list[str]
    sort_keys: array[float]  # -published.timestamp(), as Index.sort_keys holds it
    postings: tuple[Postings, ...]  # by country, topic and word (index.KEYS): run numbers
    special: list[tuple[int, Special]]  # the drafts, withdrawn and updated, by number


def run_of(releases: Sequence[Release]) -> tuple[Run, dict[int, int]]:
    """Return a run of these releases, and each release's number in it, by id()."""
    ordered = newest_first(releases)
    records = [record(release) for release in ordered]
    offsets = array("q", [0])
    end = 0
    for item in records:
        end += len(item)
        offsets.append(end)
    postings: list[Postings] = []
    for keys in KEYS:
        found: Postings = {}
        get = found.get
        for number, release in enumerate(ordered):
            for key in keys(release):
                posting = get(key)
                if posting is None:
                    posting = found[key] = array(LABEL)
                posting.append(number)
        postings.append(found)
    run = Run(b"".join(records), offsets,
              [(r.published - _EPOCH) // _MICROSECOND for r in ordered],
              [r.id for r in ordered],
              array("d", (-r.published.timestamp() for r in ordered)),
              tuple(postings),
              [(n, looked) for n, r in enumerate(ordered) if (looked := special(r)) is not None])
    return run, {id(release): number for number, release in enumerate(ordered)}


@dataclass(frozen=True)
class Merged:
    """The runs' releases as one store in the dataset's order, and where each run's went."""

    store: Store
    positions: list[array[int]]  # for each run, the position of each of its records
    runs: Sequence[Run]
    clean: bool  # no file of the runs has a problem (duplicate ids are not looked for)

    def valid(self) -> bool:
        """Tell whether the runs' files have no problem and no id is used twice."""
        ids = sum(len(run.ids) for run in self.runs)
        return self.clean and len({rid for run in self.runs for rid in run.ids}) == ids

    def special(self) -> list[tuple[int, Special]]:
        """Return the drafts, withdrawn and updated releases by position, ascending."""
        return sorted(((positions[number], found)
                       for run, positions in zip(self.runs, self.positions, strict=True)
                       for number, found in run.special), key=itemgetter(0))


def merge(runs: Sequence[Run], *, clean: bool) -> Merged:
    """Put the runs' records in one store, newest first (by published, then id, descending)."""
    order = sorted(((instant, rid, n, number)
                    for n, run in enumerate(runs)
                    for number, (instant, rid) in enumerate(zip(run.instants, run.ids,
                                                                strict=True))),
                   reverse=True)
    positions = [array("q", bytes(8 * len(run.ids))) for run in runs]
    views = [memoryview(run.blob) for run in runs]
    parts = []
    for at, (_, _, n, number) in enumerate(order):
        positions[n][number] = at
        offsets = runs[n].offsets
        parts.append(views[n][offsets[number]:offsets[number + 1]])
    store = Store.of(parts)
    del parts, views
    # The records are the store's now: the runs keep their keys and lists, not a copy.
    return Merged(store, positions, [replace(run, blob=b"") for run in runs], clean)


def index_of(dataset: Dataset, merged: Merged) -> Index:
    """Index a dataset whose releases are the merged store's, in its order."""
    count = len(merged.store)
    gap = spacing(count)
    labels = array(LABEL, range(0, count * gap, gap))
    relabelled = [array(LABEL, (gap * at for at in positions)) for positions in merged.positions]
    ids: list[str] = [""] * count
    sort_keys = array("d", bytes(8 * count))
    for run, positions in zip(merged.runs, merged.positions, strict=True):
        for number, at in enumerate(positions):
            ids[at] = run.ids[number]
            sort_keys[at] = run.sort_keys[number]
    lists = [_joined([run.postings[kind] for run in merged.runs], relabelled)
             for kind in range(len(KEYS))]
    return Index(dataset=dataset, by_id=dict(zip(ids, labels, strict=True)),
                 by_country=lists[0], by_topic=lists[1], by_word=lists[2],
                 sort_keys=sort_keys, labels=labels)


def _joined(postings: Sequence[Postings], relabelled: Sequence[array[int]]) -> Postings:
    """Join the runs' posting lists of one kind, relabelled, each list ascending."""
    joined: dict[str, list[int]] = {}
    for found, labels in zip(postings, relabelled, strict=True):
        for key, numbers in found.items():
            mapped = list(map(labels.__getitem__, numbers))
            have = joined.get(key)
            if have is None:
                joined[key] = mapped
            else:
                have += mapped
                have.sort()  # two ascending runs: merged in one pass
    return {key: array(LABEL, labels) for key, labels in joined.items()}


def releases_of(merged: Merged) -> StoredReleases:
    """Return the merged releases, newest first: records made into objects when read."""
    return StoredReleases.all_of(merged.store)


class RunFiles(Mapping[str, FileEntry]):
    """The catalog entries the loading processes sent, in path order, unpickled when first
    read: a start serves before anything reads them (the check for changes made meanwhile
    does, in the background; see reload.py), and then they are kept as one dict."""

    def __init__(self, payloads: Sequence[bytes], merged: Merged) -> None:
        self._payloads = list(payloads)
        self._found = merged.store, merged.positions  # what the entries' numbers mean
        self._files: dict[str, FileEntry] | None = None
        self._lock = threading.Lock()

    def _all(self) -> dict[str, FileEntry]:
        files = self._files
        if files is None:
            with self._lock:
                if self._files is None:
                    made: dict[str, FileEntry] = {}
                    store, positions = self._found
                    for payload, numbered in zip(self._payloads, positions, strict=True):
                        made.update(_EntryUnpickler(payload, store, numbered).load())
                    self._files, self._payloads, self._found = made, [], (store, [])
                files = self._files
        return files

    def __getitem__(self, name: str) -> FileEntry:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def get(self, name: str, default: Any = None) -> Any:
        return self._all().get(name, default)

    def keys(self) -> KeysView[str]:
        return self._all().keys()

    def items(self) -> ItemsView[str, FileEntry]:
        return self._all().items()

    def values(self) -> ValuesView[FileEntry]:
        return self._all().values()

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (self._all(),)


class _EntryUnpickler(pickle.Unpickler):
    """Unpickles one run's catalog entries, their releases records of the merged store."""

    def __init__(self, payload: bytes, store: Store, positions: array[int]) -> None:
        super().__init__(io.BytesIO(payload))  # shares the bytes: no copy
        self.store, self.positions = store, positions

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "run_entry":
            return self._entry
        return super().find_class(module, name)

    def _entry(self, numbers: Sequence[int], key: Key, digest: bytes, *values: Any
               ) -> FileEntry:
        at = self.positions
        found = StoredReleases(self.store, tuple(at[n] for n in numbers)) if numbers else ()
        return FileEntry(key, digest, found, *values)


def run_entry(*values: Any) -> Any:
    """What a run's entry is pickled as: read only by EntryUnpickler."""
    raise pickle.UnpicklingError("a run's catalog entry is read with its merged store")


_VALUES = tuple(f.name for f in fields(FileEntry) if f.name not in ("key", "digest", "releases"))


def dumps_entries(entries: dict[str, FileEntry], numbers: Mapping[int, int]) -> bytes:
    """Pickle a run's catalog entries (in a loading process), releases by run number."""
    def reduce(entry: FileEntry) -> tuple[Any, ...]:
        return run_entry, (tuple(numbers[id(r)] for r in entry.releases), entry.key,
                           entry.digest, *(getattr(entry, name) for name in _VALUES))
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.dispatch_table = {FileEntry: reduce}
    pickler.dump(entries)
    return buffer.getvalue()
