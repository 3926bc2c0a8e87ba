"""The simulated backend, and the system checks that catch provisioning settings that cannot work."""

import uuid

import pytest

from provisioning.backends import AccountActionRequest, ProvisioningError, provisioning_backend_get
from provisioning.backends.http import HttpBackend
from provisioning.backends.simulated import SimulatedBackend
from provisioning.checks import provisioning_settings_check
from tests.provisioning.factories import provisioning_request


def test_the_same_key_gives_the_same_account_and_another_key_another():
    backend = SimulatedBackend()
    request = provisioning_request()

    first = backend.provision(request)

    assert backend.provision(request) == first
    assert (
        SimulatedBackend().provision(provisioning_request(attempt=2, idempotency_key=request.idempotency_key)) == first
    )
    assert backend.provision(provisioning_request()).username != first.username


@pytest.mark.parametrize(
    ("domain", "email", "stem"),
    [
        ("example.com", "ada@example.com", "example"),
        ("My-Shop.example", "x@example.com", "myshop"),
        ("2048games.example", "x@example.com", "games"),
        ("averyveryverylongname.example", "x@example.com", "averyver"),
        ("", "ada.lovelace@example.com", "ada"),
    ],
)
def test_the_username_comes_from_the_domain_or_the_email(domain, email, stem):
    account = SimulatedBackend().provision(provisioning_request(domain=domain, customer_email=email))

    assert account.username[:-4] == stem
    assert account.server.endswith(".sim.migrahosting.test")
    assert account.domain == domain


def test_fail_n_times_fails_the_first_n_attempts_only():
    backend = SimulatedBackend()

    for attempt in (1, 2, 3):
        with pytest.raises(ProvisioningError, match=f"{attempt} of 3") as error:
            backend.provision(provisioning_request(domain="fail-3-times.example.com", attempt=attempt))
        assert error.value.retryable

    assert backend.provision(provisioning_request(domain="fail-3-times.example.com", attempt=4)).username


@pytest.mark.parametrize(("domain", "retryable"), [("always-fail.example.com", True), ("reject.example.com", False)])
def test_always_fail_and_reject(domain, retryable):
    with pytest.raises(ProvisioningError) as error:
        SimulatedBackend().provision(provisioning_request(domain=domain, attempt=99))

    assert error.value.retryable is retryable


def test_the_backend_is_chosen_in_settings(settings):
    settings.PROVISIONING_BACKEND = "http"
    settings.PROVISIONING_HTTP_URL = "https://panel.example/api"
    assert isinstance(provisioning_backend_get(), HttpBackend)

    settings.PROVISIONING_BACKEND = "tests.provisioning.backends.ExplodingBackend"
    assert provisioning_backend_get().name == "exploding"

    settings.PROVISIONING_BACKEND = "simulated"
    assert isinstance(provisioning_backend_get(), SimulatedBackend)


def test_the_checks_pass_with_the_defaults():
    assert provisioning_settings_check(None) == []


def test_the_http_backend_without_url_or_secret_fails_the_checks(settings):
    settings.PROVISIONING_BACKEND = "http"
    settings.PROVISIONING_HTTP_URL = "https://panel.example/api"
    settings.PROVISIONING_HTTP_SECRET = ""

    assert [error.id for error in provisioning_settings_check(None)] == ["provisioning.E001"]


def test_a_retry_cap_beyond_the_visibility_timeout_fails_the_checks(settings):
    settings.PROVISIONING_RETRY_CAP_SECONDS = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]

    assert [error.id for error in provisioning_settings_check(None)] == ["provisioning.E002"]


def an_action(action: str, **overrides) -> AccountActionRequest:
    fields = {
        "idempotency_key": str(uuid.uuid4()),
        "job_id": 2,
        "attempt": 1,
        "subscription_id": 1,
        "action": action,
        "username": "example3f2a",
        "server": "web01.sim.migrahosting.test",
        "domain": "example.com",
        "panel_reference": "sim-1",
        "reason": "unpaid",
    }
    return AccountActionRequest(**{**fields, **overrides})


@pytest.mark.parametrize("action", ["suspend", "unsuspend", "terminate"])
def test_the_simulated_panel_carries_out_each_decision_any_number_of_times(action):
    backend = SimulatedBackend()
    request = an_action(action)

    assert getattr(backend, action)(request) is None
    assert getattr(backend, action)(request) is None


@pytest.mark.parametrize("action", ["suspend", "unsuspend", "terminate"])
def test_the_domain_orders_a_decision_that_fails_or_is_refused(action):
    backend = SimulatedBackend()

    with pytest.raises(ProvisioningError) as failing:
        getattr(backend, action)(an_action(action, domain=f"{action}-fails.example.com", attempt=3))
    with pytest.raises(ProvisioningError) as refused:
        getattr(backend, action)(an_action(action, domain=f"{action}-rejected.example.com"))
    other = "unsuspend" if action != "unsuspend" else "suspend"
    getattr(backend, other)(an_action(other, domain=f"{action}-fails.example.com"))  # only the action named fails

    assert failing.value.retryable and "attempt 3" in str(failing.value)
    assert not refused.value.retryable
    assert backend.provision(
        provisioning_request(domain=f"{action}-rejected.example.com")
    ).username  # provisioning works
