"""Every refusal in OpenAI's error shape, FastAPI's and Starlette's own 404, 405 and 422 included.

A client gets `{"error": {"message", "type", "param", "code"}}` with the status that
says what happened; never a traceback, never a framework's own body.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from llmos_grammar.serve.types import QueueFull, RequestFailed, ServeError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

log = logging.getLogger("llmos.serve")


class Unauthorized(ServeError):
    status = 401


class BodyTooLarge(ServeError):
    status = 413


class RouteNotFound(ServeError):
    status = 404


class MethodNotAllowed(ServeError):
    status = 405


class InternalError(ServeError):
    status = 500
    type = "server_error"


class Failed(ServeError):
    """A request that failed after it was accepted (`RequestFailed`), with its own status."""

    def __init__(self, failed: RequestFailed) -> None:
        super().__init__(failed.message, failed.param, failed.code)
        self.status = failed.status
        self.type = failed.type


def error_json(error: ServeError) -> dict[str, object]:
    """OpenAI's error body."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def dumps(value: object) -> str:
    """Compact JSON, ASCII only: any text (a lone surrogate included) encodes."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def json_response(
    value: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    from starlette.responses import Response

    return Response(dumps(value), status, headers, media_type="application/json")


def error_response(error: ServeError) -> Response:
    headers = {}
    if isinstance(error, QueueFull):
        headers["Retry-After"] = str(max(1, error.retry_after_s))
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return json_response(error_json(error), error.status, headers)


def install(app: FastAPI) -> None:
    """Answer every error the framework raises in OpenAI's shape."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    app.add_exception_handler(ServeError, _serve_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)


async def _serve_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServeError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    from starlette.exceptions import HTTPException

    assert isinstance(exc, HTTPException)
    where = f"{request.method} {_short(request.url.path)}"
    error: ServeError
    if exc.status_code == 404:
        error = RouteNotFound(f"no route {where}: the API is under /v1 (GET /v1/models)")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow") or ""
        error = MethodNotAllowed(
            f"{where} is not allowed" + (f": use {allowed}" if allowed else "")
        )
    elif exc.status_code == 413:
        error = BodyTooLarge("the request body is too large")
    else:
        error = ServeError(str(exc.detail))
        error.status = exc.status_code
    response = error_response(error)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    return error_response(ServeError(f"the request to {_short(request.url.path)} is not valid"))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, _short(request.url.path), exc_info=exc)
    return error_response(InternalError("internal error: the server logged it"))


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
