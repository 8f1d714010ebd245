"""Errors that reach users; shared by the API, the builder and the composer."""

from tornado import web


class InputError(web.HTTPError):
    """A 4xx about one field of a request; the JSON error names the field."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(status, "%s", f"{field}: {message}")
        self.field = field
