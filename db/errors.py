"""The base of every error the domain raises on purpose: a stable code and a sentence for people."""


class DomainError(Exception):
    """An error the domain raises on purpose; `api/problems.py` maps each kind to an HTTP status."""

    code = "DOMAIN_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
