"""Dataset problems: what is wrong, and exactly where."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Control characters and lone surrogates (from a file name, a key or an id) would break the
# one-line-per-problem report, or make printing it to a UTF-8 stream fail.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the dataset, located by file, line, release and field."""

    file: str
    line: int | None
    release: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        release = "" if self.release is None else f": release {self.release}"
        field = "" if self.field is None else f": field {self.field}"
        return _printable(f"{where}{release}{field}: {self.message}")

    def place(self) -> tuple[str, int]:
        """Return where it is, the order problems are reported in: file, then line."""
        return self.file, self.line or 0


class DatasetError(Exception):
    """The dataset is invalid; every problem found is listed, none is left out."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.report())

    def report(self) -> str:
        """Return the problems as lines, with a count at the top."""
        count = len(self.problems)
        head = f"dataset invalid: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def headline(self) -> str:
        """Return one line: the first problem, and how many more there are."""
        more = len(self.problems) - 1
        rest = f" (and {more} more: `feedsvc check-data` lists them)" if more > 0 else ""
        first = str(self.problems[0]) if self.problems else "no problem named"
        return f"dataset invalid: {first}{rest}"
