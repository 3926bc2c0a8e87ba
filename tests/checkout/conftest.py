import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

CREATE_URL = "/api/checkout/create-session"


@pytest.fixture
def catalog(db):
    """The real catalog, loaded from the versioned data file as `make run` does."""
    call_command("catalog_load", verbosity=0)


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def create_session(api, catalog, stripe_sandbox):
    """POST a create-session body; the sandbox is running and the catalog loaded."""

    def post(body, **headers):
        return api.post(CREATE_URL, body, format="json", **headers)

    return post


def order(**overrides) -> dict:
    """A valid request body as the marketing site sends it."""
    body = {
        "planId": "starter",
        "billingCycle": "monthly",
        "trialActive": False,
        "customer": {"name": "John Doe", "email": "john@example.com"},
    }
    body.update(overrides)
    return body
