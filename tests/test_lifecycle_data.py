"""check-data validates the lifecycle fields like every other: file, line, release and field."""
from __future__ import annotations

from feedsvc.dataset import load_dataset

from .test_dataset import GOOD, SITE_AND_TOPICS, Write, problems, run_cli

LIFECYCLE = GOOD + """\
    draft: false
    corrections:
      - {date: 2020-03-02, note: A name was misspelt.}
      - date: 2020-03-05T10:00:00+07:00
        note: The date of the meeting.
    withdrawn: 2020-04-01T09:00:00+07:00
    withdrawn_note: The figures were provisional.
"""


def test_lifecycle_fields_load(write_yaml: Write) -> None:
    (release,) = load_dataset(write_yaml("ok.yaml", SITE_AND_TOPICS + "releases:" + LIFECYCLE)
                              ).releases
    assert [c.note for c in release.corrections] == ["A name was misspelt.",
                                                      "The date of the meeting."]
    assert release.updated is not None and release.updated.isoformat() == "2020-03-05T10:00:00+07:00"
    assert release.withdrawn_note == "The figures were provisional." and not release.draft


def test_bad_lifecycle_fields_are_located(write_yaml: Write) -> None:
    bad = (LIFECYCLE.replace("draft: false", "draft: maybe")
           .replace("2020-03-02", "2020-02-30")
           .replace("The date of the meeting.", "''\n      - {date: 2020-01-01, note: Too early.}")
           .replace("2020-04-01T09:00:00+07:00", "2020-02-01T09:00:00+07:00"))
    path = write_yaml("bad.yaml", SITE_AND_TOPICS + "releases:" + bad)
    found = problems(path)
    expected = [
        (20, "field draft: must be true or false, got 'maybe'"),
        (22, "field corrections[1].date: '2020-02-30' is not a valid date"),
        (24, "field corrections[2].note: is empty"),
        (25, "field corrections[3].date: a correction is earlier than published"),
        (26, "field withdrawn: is earlier than published"),
    ]
    for line, message in expected:
        assert any(p.startswith(f"{path}:{line}: release r-1: {message}") for p in found), \
            (line, message, found)
    assert len(found) == len(expected)


def test_a_note_needs_its_withdrawal_and_corrections_a_list(write_yaml: Write) -> None:
    bad = GOOD + "    withdrawn_note: Why.\n    corrections: yesterday\n"
    path = write_yaml("bad.yaml", SITE_AND_TOPICS + "releases:" + bad)
    assert sorted(problems(path)) == [
        f"{path}:20: release r-1: field withdrawn_note: is given without withdrawn "
        "(the date-time of withdrawal)",
        f"{path}:21: release r-1: field corrections: must be a list of {{date, note}} mappings",
    ]


def test_a_draft_is_checked_and_reserves_its_id(write_yaml: Write) -> None:
    draft = GOOD.replace("summary: Something happened.", "summary: Draft.\n    draft: true")
    path = write_yaml("drafts.yaml", SITE_AND_TOPICS + "releases:" + GOOD + draft.replace(
        "countries: [TH]", "countries: [XX]"))
    result = run_cli("check-data", str(path))
    assert result.returncode == 1
    assert f"{path}:21: release r-1: field id: duplicate id, first used at {path}:13" \
        in result.stderr
    assert f"{path}:25: release r-1: field countries: 'XX' is not" in result.stderr
