"""What the store's tests share: releases compared field by field, date-times by zone too."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from feedsvc.dataset import Release


def exact(value: Any) -> Any:
    """Return what a value is when nothing may differ: a date-time's wall time, its zone (its
    key, or its offset), its fold and offset; a record's every field, recursively."""
    if isinstance(value, datetime):
        zone = value.tzinfo
        name = zone.key if isinstance(zone, ZoneInfo) else repr(zone)
        return (value.replace(tzinfo=None).isoformat(), type(zone).__name__, name, value.fold,
                value.utcoffset())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,
                *((f.name, exact(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, tuple | list):
        return tuple(exact(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, exact(v)) for k, v in value.items())
    return value


def assert_same(found: Release | None, expected: Release | None) -> None:
    """Assert two releases (or None) are the same in every field, date-times exactly."""
    assert exact(found) == exact(expected)
