"""The one error type a request can end in: an HTTP status, a short code and a human message."""

from __future__ import annotations


class RequestError(Exception):
    """A client mistake, answered as `{status} {"error": code, "message": message}`.

    Raised anywhere between the body and the model; the entry script turns it into the JSON answer,
    so bad input never reaches the server's generic 500 handler.
    """

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}  # e.g. Retry-After on 503, WWW-Authenticate on 401

    def as_json(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"RequestError({self.status}, {self.code!r}, {self.message!r})"
