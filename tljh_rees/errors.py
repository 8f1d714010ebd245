"""Errors that reach people, raised by domain code (catalog, builds, composer, exports).

Domain code knows nothing of the web: the JSON API turns a :class:`ReesError` into
``{"error": ..., "status": ..., "field": ...}`` (``handlers/base.py``) and the spawner
into the Hub's own error page. ``status`` is the HTTP status that kind of problem gets.
"""

from __future__ import annotations


class ReesError(Exception):
    """Something a person can act on: ``message`` says what is wrong and what to do."""

    status = 400

    def __init__(self, message: str, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InputError(ReesError):
    """One field of a request is wrong; the message names it."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message, field=field, status=status)


class NotFound(ReesError):
    status = 404


class Forbidden(ReesError):
    status = 403


class Conflict(ReesError):
    status = 409
