"""Failures that are not the client's fault and pass by themselves: a database that is locked (SQLite under `make
run`), restarting, or that dropped our connection. They answer 503 with a Retry-After hint, never a 500 or Django's
debug page. Every write of ours is idempotent or inside a transaction that was rolled back, so trying again is safe.
Also the API's JSON answer for the 400s Django raises itself (a body over the limit, a Host it refuses)."""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults

from core.exceptions import database_error_is_transient, database_unavailable_response, error_body


class DatabaseUnavailableMiddleware:
    """Turns a transient database error raised by any view (the admin's and the client area's included) into the
    503 of core.exceptions. The API's views get the same answer from its api_exception_handler."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if database_error_is_transient(exception):
            return database_unavailable_response(request, exception)
        return None


def bad_request(request, exception=None):
    """handler400: Django's own 400s (SuspiciousOperation) are JSON under /api/; a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 there, as the API's own size check answers."""
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("The request body is too large.", "payload_too_large"), status=413)
    return JsonResponse(error_body("Bad request.", "bad_request"), status=400)
