"""The fediverse: every country and topic feed an ActivityPub actor (docs/fediverse.md)."""
