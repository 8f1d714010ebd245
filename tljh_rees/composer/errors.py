"""The composer's one error type; handlers turn it into a JSON error naming the field."""

from ..errors import InputError


class SpecError(InputError):
    pass
