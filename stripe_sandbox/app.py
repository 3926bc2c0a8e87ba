"""One HTTP request in, one response out: the Stripe API (auth, faults, idempotency, request log), the control API and
the hosted checkout pages. Knows nothing about sockets."""

import base64
import binascii
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from stripe_sandbox import billing, control, fulfillment, invoice_pages, pages, portal_pages, resources
from stripe_sandbox.call import ApiCall
from stripe_sandbox.expand import expand
from stripe_sandbox.responses import Response, json_response
from stripe_sandbox.store import ACCOUNT_API_VERSION, IdempotentResult, Store, new_id
from stripe_sandbox.webhooks import Dispatcher
from stripe_sandbox.wire import Params, StripeError, decode_form, encode_json

# What an API request without a Stripe-Version header gets; the project pins the same version.
DEFAULT_API_VERSION = ACCOUNT_API_VERSION
IDEMPOTENCY_KEY_MAX_LENGTH = 255

_API_KEY = re.compile(r"sk_test_[A-Za-z0-9]{24,}")
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer "
    "auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
)


@dataclass
class Request:
    method: str
    target: str  # path and query string
    headers: Mapping[str, str]  # looked up case-insensitively (an http.client.HTTPMessage)
    body: bytes
    client: str  # host:port of the peer


def _unrecognized(method: str, path: str) -> StripeError:
    return StripeError(
        f"Unrecognized request URL ({method}: {path}). The Stripe sandbox implements only part of Stripe's API.",
        status=404,
    )


class SandboxApp:
    def __init__(self, *, store: Store, public_url: str, dispatcher: Dispatcher):
        self.store = store
        self.public_url = public_url
        self.dispatcher = dispatcher

    def handle(self, request: Request) -> Response:
        path, _, query = request.target.partition("?")
        if path.startswith("/v1/"):
            return self._api(request, path, query)
        if path.startswith("/_sandbox/"):
            return control.handle(self.store, self.dispatcher, request.method, path, query, request.body)
        if path.startswith("/c/pay/"):
            return pages.handle(self.store, request.method, path, request.body)
        if path.startswith("/i/"):
            return invoice_pages.handle(self.store, request.method, path, request.body)
        if path.startswith("/p/"):
            return portal_pages.handle(self.store, request.method, path, request.body, query)
        return json_response(404, _unrecognized(request.method, path).body())

    def _api(self, request: Request, path: str, query: str) -> Response:
        request_id = new_id("req_", 14)
        # Stripe ignores idempotency keys on anything but POST.
        key = (request.headers.get("Idempotency-Key") or None) if request.method == "POST" else None
        version = request.headers.get("Stripe-Version") or DEFAULT_API_VERSION
        params: dict = {}
        replayed = False
        try:
            self._inject_fault(request.method, path)
            _authenticate(request.headers.get("Authorization"))
            if not _API_VERSION.fullmatch(version):
                raise StripeError(f"Invalid Stripe API version: {version}")
            if key is not None and len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
                raise StripeError(
                    f"Invalid Idempotency-Key: it must be at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters long, "
                    f"this one has {len(key)}."
                )
            params = decode_form(_form_text(request) if request.method == "POST" else query)
            status, body, request_id, replayed = self._call(
                request.method, path, params, version=version, key=key, request_id=request_id
            )
        except StripeError as error:
            status, body = error.status, encode_json(error.body())

        headers = [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-cache, no-store"),
            ("Request-Id", request_id),
            ("Stripe-Version", version if _API_VERSION.fullmatch(version) else DEFAULT_API_VERSION),
        ]
        if key is not None:
            headers.append(("Idempotency-Key", key))
        if replayed:
            headers.append(("Idempotent-Replayed", "true"))
        self.store.log_request(
            {
                "request_id": request_id,
                "time": time.time(),
                "method": request.method,
                "path": path,
                "params": params,
                "idempotency_key": key,
                "stripe_version": version,
                "status": status,
                "replayed": replayed,
                "client": request.client,
            }
        )
        return Response(status, headers, body)

    def _inject_fault(self, method: str, path: str) -> None:
        fault = self.store.take_fault(method, path)
        if fault is None:
            return
        if fault.delay_ms:
            time.sleep(fault.delay_ms / 1000)
        if fault.status:
            raise StripeError(
                "Injected fault: the sandbox was told to fail this request (POST /_sandbox/faults).",
                status=fault.status,
                type="api_error",
            )

    def _call(self, method, path, params, *, version, key, request_id) -> tuple[int, bytes, str, bool]:
        """Run the endpoint, or replay what an earlier request with the same idempotency key got."""
        route = resources.resolve(method, path)
        if route is None:
            raise _unrecognized(method, path)
        handler, path_args = route
        with self.store.lock:
            if key is not None:
                saved = self.store.idempotent_result(key)
                if saved is not None:
                    _check_same_request(saved, method, path, params, key)
                    return saved.status, saved.body, saved.request_id, True
            # Sessions whose time is up expire before anyone can see or pay them (the sweep thread may lag a second).
            fulfillment.expire_due_sessions(self.store)
            # Likewise renewals and retries that came due on the sandbox's clock.
            billing.run_sandbox_clock(self.store)
            status, body = self._run(handler, path_args, params, version, request_id, key)
            if key is not None:
                # Errors are kept too: a retry with the same key gets the same answer, as the first request did.
                self.store.save_idempotent_result(key, IdempotentResult(method, path, params, status, body, request_id))
        return status, body, request_id, False

    def _run(self, handler, path_args: dict, params: dict, version: str, request_id: str, key: str | None):
        try:
            reader = Params(params)
            expand_paths = reader.strings("expand")
            call = ApiCall(
                store=self.store,
                params=reader,
                now=self.store.now(),
                api_version=version,
                public_url=self.public_url,
                request_id=request_id,
                idempotency_key=key,
            )
            obj = handler(call, **path_args)
            return 200, encode_json(expand(self.store, obj, expand_paths))
        except StripeError as error:
            return error.status, encode_json(error.body())


def _form_text(request: Request) -> str:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type not in ("", "application/x-www-form-urlencoded"):
        raise StripeError(
            f"Invalid request: unsupported Content-Type {content_type}. "
            "Send parameters form-encoded (application/x-www-form-urlencoded)."
        )
    try:
        return request.body.decode()
    except UnicodeDecodeError:
        raise StripeError("Invalid request: the body is not UTF-8.") from None


def _authenticate(authorization: str | None) -> None:
    if not authorization:
        raise StripeError(_NO_KEY, status=401)
    scheme, _, credentials = authorization.partition(" ")
    key = credentials.strip()
    if scheme.lower() == "basic":
        # curl -u sk_test_...: sends the key as the user name.
        try:
            key = base64.b64decode(key, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    elif scheme.lower() != "bearer":
        raise StripeError(_NO_KEY, status=401)
    if not _API_KEY.fullmatch(key):
        masked = "*" * max(len(key) - 4, 0) + key[-4:]
        raise StripeError(
            f"Invalid API Key provided: {masked} (the sandbox accepts sk_test_ followed by at least 24 letters "
            "or digits).",
            status=401,
        )


def _check_same_request(saved: IdempotentResult, method: str, path: str, params: dict, key: str) -> None:
    if (saved.method, saved.path) != (method, path):
        raise StripeError(
            "Keys for idempotent requests can only be used for the same endpoint they were first used for "
            f"('{saved.method} {saved.path}' vs '{method} {path}'). "
            f"Try using a key other than '{key}' if you meant to execute a different request.",
            type="idempotency_error",
        )
    if saved.params != params:
        raise StripeError(
            "Keys for idempotent requests can only be used with the same parameters they were first used with. "
            f"Try using a key other than '{key}' if you meant to execute a different request.",
            type="idempotency_error",
        )
