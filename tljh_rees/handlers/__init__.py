"""Tornado handlers: ``pages`` (HTML), ``api`` (JSON), ``events`` (server-sent events)."""
