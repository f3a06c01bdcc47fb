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


def install_json_http_errors() -> None:
    """azmlinfsrv's own 404 and 405 answers as the contract's JSON error.

    A method /score does not route (PUT, DELETE, PATCH...) or an unknown path never reaches
    run(): Flask answers it from azmlinfsrv's app-wide handler, `{"message": ...}` without the
    `error` code clients branch on. init() runs while azmlinfsrv registers its blueprint
    (AMLInferenceBlueprint.register calls setup(), then Flask's register), so an app-wide
    handler recorded on that blueprint now is installed with it; a handler for the status code
    wins over azmlinfsrv's one for every HTTPException."""
    import sys

    routes = sys.modules.get("azureml_inference_server_http.server.routes")
    if routes is None:  # not under azmlinfsrv (a test calling init() directly)
        return
    for code in (404, 405):
        routes.main_blueprint.app_errorhandler(code)(_json_http_error)


def _json_http_error(exc):
    """One werkzeug HTTPException (404, 405) as {"error", "message"}, with its headers (Allow)."""
    from azureml_inference_server_http.api.aml_response import AMLResponse
    from flask import request

    if exc.code == 405:
        allowed = sorted(set(getattr(exc, "valid_methods", None) or ()) - {"OPTIONS"})
        message = (
            f"{request.method} is not supported on {request.path}: "
            f"use {' or '.join(allowed) or 'another method'}"
            + (" (POST the audio to /score)" if request.path == "/score" else "")
        )
    else:
        message = f"there is no {request.path}: POST the audio to /score"
    code = {404: "not_found", 405: "method_not_allowed"}[exc.code]
    response = AMLResponse({"error": code, "message": message}, exc.code, json_str=True)
    for name, value in exc.get_headers():
        if name.lower() == "allow":
            response.headers[name] = value
    return response
