"""The feeds every benchmark row requests: all releases, one country, a filtered topic."""
FEEDS = (
    "/feeds/all.rss",
    "/feeds/countries/th.rss",
    "/feeds/topics/occupational-safety-and-health.rss?country=th,cn",
)
