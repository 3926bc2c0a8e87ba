"""WSGI middleware: a chunked request body reaches Django.

gunicorn decodes a `Transfer-Encoding: chunked` body and says so with `wsgi.input_terminated`, but Django reads only
CONTENT_LENGTH, so the body arrived empty and the API answered "planId: This field is required". Here the body is
read (bounded by DATA_UPLOAD_MAX_MEMORY_SIZE, as Django bounds any other body) and handed on with its length. nginx
in front buffers a chunked body and sends a Content-Length itself; this covers gunicorn reached directly.
"""

import io
import json

from django.conf import settings

_TOO_LARGE = json.dumps({"error": "The request body is too large.", "code": "payload_too_large"}).encode()
_NO_LENGTH = json.dumps(
    {"error": "A request body needs a Content-Length or chunked encoding.", "code": "length_required"}
).encode()


class ChunkedBodyMiddleware:
    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            if not environ.get("wsgi.input_terminated"):  # a server that cannot tell where the body ends
                return _answer(start_response, "411 Length Required", _NO_LENGTH)
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            body = environ["wsgi.input"].read(limit + 1) if limit is not None else environ["wsgi.input"].read()
            if limit is not None and len(body) > limit:
                return _answer(start_response, "413 Content Too Large", _TOO_LARGE)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)


def _answer(start_response, status: str, body: bytes):
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")]
    )
    return [body]
