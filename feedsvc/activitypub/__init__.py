"""The fediverse: every country and topic feed, and the whole site, as an ActivityPub actor."""
