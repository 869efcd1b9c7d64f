"""The open API gateway (PROTOCOL §3)."""
