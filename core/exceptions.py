"""The domain error type and the one place that turns every API error into `{"error": ..., "code": ...}`."""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
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
        return Response(error_body(text, f"invalid_{code}" if code != "invalid" else "invalid", field),
                        status=status.HTTP_400_BAD_REQUEST)
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
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__ if context else "?")
    return Response(
        error_body("Something went wrong on our side; nothing was charged. Please try again.", "internal_error"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
