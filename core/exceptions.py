"""The domain error type and the one place that turns every API error into `{"error": ..., "code": ...}`."""

import logging
import sqlite3

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """An expected failure: a stable machine code, a message for a person, and the HTTP status the API answers."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, code: str, status_code: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        if status_code is not None:
            self.status_code = status_code


def error_body(message: str, code: str, field: str | None = None) -> dict:
    body = {"error": message, "code": code}
    if field:
        body["field"] = field
    return body


def _first_validation_error(detail, path: str = "") -> tuple[str, str, str]:
    """Walk DRF's nested error detail to the first leaf: (field path, message, code)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            child = key if not path else (path if key == "non_field_errors" else f"{path}.{key}")
            if key == "non_field_errors" and not path:
                child = ""
            return _first_validation_error(value, child)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], path)
    return path, str(detail), getattr(detail, "code", "invalid") or "invalid"


# --- Failures that pass by themselves: 503 with a retry hint (core/failures.py answers them outside the API) ----------

RETRY_AFTER_SECONDS = 5
# SQLite's own words for "another connection holds the lock"; its other OperationalErrors ("no such table") are bugs.
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def database_error_is_transient(error: BaseException) -> bool:
    """A database error that a retry a few seconds later can get past: a lost or refused connection, a server
    shutting down, a lock held too long. Not a bad query or a missing table, which stay 500s (and page someone)."""
    if isinstance(error, InterfaceError):  # "connection already closed"
        return True
    if not isinstance(error, OperationalError):
        return False
    cause = error.__cause__
    if isinstance(cause, sqlite3.OperationalError):
        return str(cause).startswith(_SQLITE_BUSY)
    return True  # PostgreSQL (psycopg): connection failures, admin shutdown, cancelled statements


def database_unavailable_response(request, error: BaseException):
    logger.warning("Database unavailable during %s %s: %s", request.method, request.path, error)
    message = "The service is busy for a moment. Please try again in a few seconds."
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body(message, "service_unavailable"), status=503)
    else:
        response = HttpResponse(render_to_string("503.html", {"message": message}, request=request), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.message, exc.code, exc.field), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body("Not found.", "not_found"), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        return Response(error_body("Permission denied.", "permission_denied"), status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_validation_error(exc.detail)
        text = f"{field}: {message}" if field else message
        # One "invalid" prefix: DRF's own codes may carry it already (invalid_choice), most do not (required).
        code = code if code.startswith("invalid") else f"invalid_{code}"
        return Response(error_body(text, code, field), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.ParseError):
        return Response(error_body("Malformed JSON in the request body.", "malformed_json"), status=400)
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 1)
        response = Response(
            error_body(f"Too many requests; try again in {wait} seconds.", "throttled"), status=exc.status_code
        )
        response["Retry-After"] = str(wait)
        return response
    if isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response = Response(error_body(str(exc.detail), code), status=exc.status_code)
        for header in ("Allow", "WWW-Authenticate"):
            if hasattr(exc, header.lower()):
                response[header] = getattr(exc, header.lower())
        return response
    if database_error_is_transient(exc):
        return database_unavailable_response(context["request"], exc)
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__ if context else "?")
    return Response(
        error_body("Something went wrong on our side; nothing was charged. Please try again.", "internal_error"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
