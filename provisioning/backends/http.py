"""A backend that asks the control panel's HTTP API to create the account and to carry out billing's decisions.

Every call is one signed POST to the same URL:

    POST <PROVISIONING_HTTP_URL>
    Content-Type: application/json
    Idempotency-Key: <the job's key; the panel answers a key it has seen as it answered it the first time>
    X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed with PROVISIONING_HTTP_SECRET>

Provisioning (the body has no "action": it is the one this API started with, unchanged so that a panel built for
it, even one that refuses unknown fields, keeps working):

    {"idempotency_key": ..., "job_id": ..., "attempt": ..., "subscription_id": ..., "product_code": ...,
     "billing_cycle": ..., "domain": ..., "customer_email": ..., "customer_name": ...}

    A 2xx answer carries {"username", "server", "domain", "reference"} (a username of at most 64 characters).

Suspend, unsuspend, terminate (the account as the panel reported it when it made it):

    {"action": "suspend" | "unsuspend" | "terminate", "idempotency_key": ..., "job_id": ..., "attempt": ...,
     "subscription_id": ..., "username": ..., "server": ..., "domain": ..., "panel_reference": ..., "reason": ...}

    Any 2xx answer means done; its body is not read. The panel should answer 2xx when the account is already in the
    state asked for (an earlier attempt may have acted without our hearing the answer).

Change plan (the customer moved to another plan or cycle: the account gets the new plan's resources):

    {"action": "change_plan", the fields above, "product_code": ..., "billing_cycle": ...,
     "previous_product_code": ..., "previous_billing_cycle": ...}

    Answered as the other actions; 2xx when the account already has that plan.

The panel checks the signature over the exact bytes it received and should refuse a `t` more than five minutes
old. A 4xx other than 409 (this key is being worked on) and 429 (slow down) means the panel refused: no retry.
Everything else (409, 429, 5xx, timeouts, refused connections, a provisioning 2xx without a username and server) is
worth another attempt.
"""

import dataclasses
import hashlib
import hmac
import json
import time

import requests

from provisioning.backends.base import (
    AccountActionRequest,
    ActionsThroughOneCall,
    ProvisionedAccount,
    ProvisioningError,
    ProvisioningRequest,
)

RETRYABLE_CLIENT_ERRORS = (409, 429)


def request_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class HttpBackend(ActionsThroughOneCall):
    name = "http"

    def __init__(self, *, url: str, secret: str, timeout: float):
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def provision(self, request: ProvisioningRequest) -> ProvisionedAccount:
        response = self._post(dataclasses.asdict(request), idempotency_key=request.idempotency_key)
        return _account_from(response, request=request)

    def _act(self, request: AccountActionRequest) -> None:
        self._post(dataclasses.asdict(request), idempotency_key=request.idempotency_key)

    def _post(self, payload: dict, *, idempotency_key: str) -> requests.Response:
        """The signed POST; returns a 2xx response, raises ProvisioningError for anything else."""
        if not self.url or not self.secret:
            # Retryable: once someone sets them (the system check reports it), the job's next attempt goes through.
            raise ProvisioningError("PROVISIONING_HTTP_URL and PROVISIONING_HTTP_SECRET must be set", retryable=True)
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "X-Signature": f"t={timestamp},v1={request_signature(secret=self.secret, timestamp=timestamp, body=body)}",
        }
        try:
            # (connect, read): the read timeout bounds each wait for bytes, which keeps the whole call well inside
            # the job's lease.
            response = requests.post(
                self.url, data=body, headers=headers, timeout=(self.timeout, self.timeout), allow_redirects=False
            )
        except requests.Timeout as error:
            raise ProvisioningError(
                f"the control panel did not answer within {self.timeout:g} s", retryable=True
            ) from error
        except requests.RequestException as error:
            raise ProvisioningError(f"the control panel could not be reached: {error}", retryable=True) from error

        if 200 <= response.status_code < 300:
            return response
        detail = f"the control panel answered {response.status_code}: {response.text[:500]}"
        retryable = not (400 <= response.status_code < 500) or response.status_code in RETRYABLE_CLIENT_ERRORS
        raise ProvisioningError(detail, retryable=retryable)


def _account_from(response: requests.Response, *, request: ProvisioningRequest) -> ProvisionedAccount:
    try:
        answer = response.json()
        username, server = answer["username"], answer["server"]
    except (ValueError, TypeError, KeyError) as error:
        # The panel may well have made the account: asking again with the same key returns it.
        raise ProvisioningError(
            f"the control panel's answer has no username and server: {response.text[:500]}", retryable=True
        ) from error
    account = ProvisionedAccount(
        username=str(username),
        server=str(server),
        domain=str(answer.get("domain") or request.domain),
        reference=str(answer.get("reference") or ""),
    )
    # What HostingAccount can hold; the panel would give the same answer to a retry.
    if (
        not account.username
        or len(account.username) > 64
        or len(account.server) > 255
        or (len(account.domain) > 253 or len(account.reference) > 255)
    ):
        raise ProvisioningError(
            f"the control panel's answer does not fit our records: {response.text[:500]}", retryable=False
        )
    return account
