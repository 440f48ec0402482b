"""The ten seed releases as published on the seed page: what the feeds must show."""
from __future__ import annotations

# id: (title start, date as published, countries, topics, dateline)
SEED = {
    "pr-2005-002": ("ILO offers special training in Cambodian Women", "2005-01-17", ["kh"],
                    ["gender-equality"], None),
    "pr-2005-001": ("Three northern provinces join forces", "2005-01-17", ["th"],
                    ["trafficking-and-child-labour"], None),
    "pr-2004-008": ("Lao hosts 5-country review", "2004-12-13", ["la"],
                    ["occupational-safety-and-health"], None),
    "pr-2004-007": ("Social security gap to be reviewed", "2004-12-03", ["th"],
                    ["social-security"], None),
    "pr-2004-006": ("International meeting looks for new strategies", "2004-11-29", [],
                    ["labour-migration"], None),
    "pr-2004-005": ("ILO Director-General on official visit to India", "2004-11-24", ["in"],
                    ["social-dialogue"], "NEW DELHI"),
    "pr-2004-004": ("Safety and health for homeworkers to be reviewed", "2004-11-22", ["th"],
                    ["occupational-safety-and-health"], None),
    "pr-2004-003": ("International experts to look at ways", "2004-10-29", ["kr"],
                    ["working-conditions", "occupational-safety-and-health"], None),
    "pr-2004-002": ("Experts assess progress in improving Cambodian", "2004-10-26", ["kh"],
                    ["occupational-safety-and-health"], None),
    "pr-2004-001": ("Small coal mine operators in Hunan", "2004-10-18", ["cn"],
                    ["occupational-safety-and-health"], "BEIJING"),
}
NEWEST_FIRST = list(SEED)
TOPICS = sorted({t for *_, topics, _ in SEED.values() for t in topics})
COUNTRIES = sorted({c for *_, countries, _, _ in SEED.values() for c in countries})


def ids_where(country: set[str] | None = None, topic: set[str] | None = None) -> list[str]:
    """Seed ids, newest first, matching any of the countries and any of the topics."""
    return [
        rid for rid, (_, _, countries, topics, _) in SEED.items()
        if (country is None or country & set(countries)) and (topic is None or topic & set(topics))
    ]
