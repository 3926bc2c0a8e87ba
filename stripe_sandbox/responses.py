"""The response the sandbox sends: status, headers and the whole body, written to the socket in one go."""

from dataclasses import dataclass

from stripe_sandbox.wire import encode_json


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, obj, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", "application/json"), *(headers or [])], encode_json(obj))


def html_response(status: int, html: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", "text/html; charset=utf-8"), *(headers or [])], html.encode())
