"""The composer's one error type; handlers turn it into a JSON error naming the field."""


class SpecError(Exception):
    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status
