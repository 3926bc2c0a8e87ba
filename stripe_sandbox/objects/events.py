"""Builders for events and the webhook endpoints they are sent to."""


def event(
    *,
    id: str,
    created: int,
    type: str,
    api_version: str,
    data_object: dict,
    previous_attributes: dict | None,
    request_id: str | None,
    idempotency_key: str | None,
    pending_webhooks: int,
) -> dict:
    """An event; `data_object` is a snapshot of the object when the event happened (the caller's copy)."""
    data = {"object": data_object}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type,
    }


def webhook_endpoint(
    *,
    id: str,
    created: int,
    url: str,
    enabled_events: list[str],
    api_version: str | None,
    description: str | None,
    metadata: dict,
) -> dict:
    """An endpoint as retrieved; Stripe adds `secret` to the answer of the create call only."""
    return {
        "id": id,
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": None,
        "created": created,
        "description": description,
        "enabled_events": enabled_events,
        "livemode": False,
        "metadata": metadata,
        "status": "enabled",
        "url": url,
    }
