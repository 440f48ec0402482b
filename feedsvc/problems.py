"""Dataset problems: what is wrong, and exactly where."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
        parts = [where]
        if self.release is not None:
            parts.append(f"release {self.release}")
        if self.field is not None:
            parts.append(f"field {self.field}")
        return f"{': '.join(parts)}: {self.message}"


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
