"""What a feed or page says and how it is written: query, URLs, feed, renderers (no Flask)."""
