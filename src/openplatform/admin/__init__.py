"""The operators' admin API (PROTOCOL §5)."""
