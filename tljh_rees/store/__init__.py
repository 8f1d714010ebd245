"""Persistent state of the service: the SQLite database and the build log files."""
