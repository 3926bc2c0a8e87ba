"""Which subscription an invoice bills, in the shape of our API version and in the shape of the versions before
2025-03-31.basil, which a webhook endpoint made with an older version still sends in its events' snapshots."""

from billing.selectors import stripe_invoice_subscription_id


def test_the_id_is_read_from_the_parent_as_our_api_version_sends_it():
    invoice = {
        "id": "in_1",
        "object": "invoice",
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_new"}},
    }

    assert stripe_invoice_subscription_id(invoice) == "sub_new"


def test_an_expanded_subscription_gives_its_id():
    invoice = {
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": {"id": "sub_new", "object": "subscription"}},
        }
    }

    assert stripe_invoice_subscription_id(invoice) == "sub_new"


def test_a_snapshot_of_an_older_api_version_has_it_at_the_top_level():
    basil_before = {"id": "in_1", "object": "invoice", "subscription": "sub_old"}

    assert stripe_invoice_subscription_id(basil_before) == "sub_old"


def test_the_parent_wins_and_an_invoice_of_no_subscription_has_none():
    both = {"subscription": "sub_old", "parent": {"subscription_details": {"subscription": "sub_new"}}}
    one_off = {"parent": {"type": "quote_details", "quote_details": {"quote": "qt_1"}, "subscription_details": None}}

    assert stripe_invoice_subscription_id(both) == "sub_new"
    assert stripe_invoice_subscription_id(one_off) is None
