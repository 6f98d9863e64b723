"""The base of every error the domain raises on purpose: a stable code and a sentence for people."""


class DomainError(Exception):
    """An error the domain raises on purpose; `api/problems.py` maps each kind to an HTTP status."""

    code = "DOMAIN_ERROR"
    # When trying again makes sense, and not sooner: seconds (the API's Retry-After).
    retry_after_seconds: int | None = None

    def __init__(self, detail: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if retry_after_seconds is not None:
            self.retry_after_seconds = retry_after_seconds
