"""The request id: taken from the proxy's X-Request-ID (or made up), kept in a contextvar for the request's log lines,
carried in the headers of every Celery task the request sends, and restored in the worker while that task runs
(celery_hooks.py)."""

import contextvars
import logging
import re
import uuid

REQUEST_ID_HEADER = "X-Request-ID"
# nginx's $request_id is 32 hex digits; a proxy or client may send a UUID. Anything else (too long, spaces, quotes,
# newlines that could forge log lines) is replaced by an id of our own.
_SANE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def request_id_get() -> str | None:
    return _current.get()


def request_id_set(value: str | None) -> contextvars.Token:
    return _current.set(value)


def request_id_reset(token: contextvars.Token) -> None:
    _current.reset(token)


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_sanitize(value: str | None) -> str:
    """The given id when it is sane (<= 64 characters of letters, digits and '-'), else a new one."""
    return value if value and _SANE_ID.fullmatch(value) else request_id_new()


class RequestIdMiddleware:
    """First in the chain, so every later middleware's and the view's log lines carry the id; echoed in the response
    so a client (or the proxy's access log) can quote it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_sanitize(request.headers.get(REQUEST_ID_HEADER))
        token = _current.set(request_id)
        request.request_id = request_id
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every record a handler emits ("-" outside a request or task), so formatters can name it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # Django logs a response's 4xx/5xx (django.request) after the middleware chain has returned: the
            # request it passes along still has the id.
            record.request_id = _current.get() or getattr(getattr(record, "request", None), "request_id", None) or "-"
        return True
