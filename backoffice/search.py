"""The back office's search: one set of rules for the search box at the top of every admin page (global_search, which
finds customers, orders and services) and for the search box of the customer, order and subscription lists.

What a term is read as decides where it is looked for, each place an index (exact, or prefix `LIKE 'x%'` on a
pattern-ops index; the indexes are in the migrations `accounts.0004`, `checkout.0003`, `billing.0004` and
`backoffice.0003`, and provisioning's username index):

- a Stripe id by its prefix: cs_ session, cus_ customer, sub_ subscription, pi_ payment (invoices and refunds),
  in_ invoice, ch_ charge (refunds, and dj-stripe's charges exactly); exactly first, else as the start of an id;
- our order id (a UUID);
- an e-mail address, or its start (`jane@exa`); `@example.com` every address at that domain;
- a domain (a dot, no space): the order's and the service's domain, as typed or with `www.`, in any case, with or
  without the trailing dot, in Unicode or A-labels, the e-mail addresses at that domain, and those starting with
  it (`jane.d`);
- anything else, of at least three characters: the start of a name (the customer's, a user's, the order's) or of
  its last word (a surname), of an e-mail address, a domain or a control-panel username.

The global search reads each way on its own, in index order, at most GROUP_ROWS + 1 rows each: its cost does not grow
with the tables. The lists OR the ways of their kind into one filter.
"""

import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db import connection
from django.db.models import F, Func, Q, QuerySet, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Lower
from django.urls import reverse

from accounts.models import Customer, CustomerMembership, Subscription, User
from billing.models import RefundRecord, SubscriptionInvoice
from checkout.models import CheckoutSession
from core.domains import InvalidDomainName, domain_name_normalize
from provisioning.models import HostingAccount

MIN_TERM_LENGTH = 3
MAX_TERM_LENGTH = 254
GROUP_ROWS = 20

CUSTOMERS, ORDERS, SERVICES = "customers", "orders", "services"
# What each kind of result needs the person to be allowed to see.
KIND_PERMISSIONS = {
    CUSTOMERS: "accounts.view_customer",
    ORDERS: "checkout.view_checkoutsession",
    SERVICES: "accounts.view_subscription",
}
KIND_LABELS = {CUSTOMERS: "Customers", ORDERS: "Orders", SERVICES: "Services"}
KIND_CHANGELISTS = {
    CUSTOMERS: "admin:accounts_customer_changelist",
    ORDERS: "admin:checkout_checkoutsession_changelist",
    SERVICES: "admin:accounts_subscription_changelist",
}

STRIPE_PREFIXES = ("cs_", "cus_", "sub_", "pi_", "in_", "ch_")
# The kind a Stripe id's page belongs to: one exact hit of that kind opens its page directly.
STRIPE_PRIMARY_KIND = {
    "cs_": ORDERS,
    "cus_": CUSTOMERS,
    "sub_": SERVICES,
    "pi_": SERVICES,
    "in_": SERVICES,
    "ch_": SERVICES,
}
_STRIPE_ID = re.compile(r"^(cs|cus|sub|pi|in|ch)_[A-Za-z0-9_]*$")
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
_DOMAIN_LIKE = re.compile(r"^[^\s@/:]+\.[^\s@/:]*$")


# --- Reading the term -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchKey:
    kind: str  # stripe, order_id, email, email_domain, domain, text
    value: str  # normalised: the id as typed; e-mails, domains and text in lower case
    prefix: str = ""  # the Stripe id's prefix

    @property
    def description(self) -> str:
        return {
            "stripe": f"a Stripe id ({self.prefix}…)",
            "order_id": "an order id",
            "email": "an e-mail address",
            "email_domain": "the domain of e-mail addresses",
            "domain": "a domain",
            "text": "a name, e-mail, domain or username (its start)",
        }[self.kind]


def domain_term_normalize(value: str) -> str:
    """A domain as staff type it, as the checkout stored it: lower case, no trailing dot, no `www.`, A-labels
    (core/domains.py); a fragment that is no valid name yet is only lower-cased."""
    value = value.strip().rstrip(".").lower()
    if value.startswith("www."):
        value = value[4:]
    try:
        return domain_name_normalize(value)
    except InvalidDomainName:
        return value


def search_key(term: str) -> SearchKey | None:
    """What the term is read as; None when it is too short (or long) to search for."""
    term = " ".join(term.split())
    if len(term) < MIN_TERM_LENGTH or len(term) > MAX_TERM_LENGTH:
        return None
    match = _STRIPE_ID.match(term)
    if match:
        return SearchKey("stripe", term, prefix=match.group(1) + "_")
    if _UUID.match(term):
        return SearchKey("order_id", str(uuid.UUID(term)))
    if "@" in term and " " not in term:
        local, _, domain = term.partition("@")
        if not local:
            domain = domain_term_normalize(domain)
            return SearchKey("email_domain", domain) if domain else None
        return SearchKey("email", term.lower())
    if _DOMAIN_LIKE.match(term):
        return SearchKey("domain", domain_term_normalize(term))
    return SearchKey("text", term.lower())


# --- The ways of finding each kind --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Way:
    """One indexed lookup: a filter on the searched model (over `aliases`, the indexed expressions), or ids read first
    from another table (`via`, a values_list of the searched model's `via_field`).

    Read without ORDER BY: the pattern-ops indexes that serve `LIKE 'x%'` do not give the collation's order, so an
    ORDER BY would sort every match (thousands for a common name) where LIMIT alone stops after GROUP_ROWS + 1 index
    entries. The page sorts the few rows itself."""

    q: Q = field(default_factory=Q)
    aliases: dict = field(default_factory=dict)
    via: QuerySet | None = None
    via_field: str = "pk"

    def filter_q(self, *, bounded: bool) -> Q:
        if self.via is None:
            return self.q
        ids = list(self.via[: GROUP_ROWS + 1]) if bounded else self.via
        return Q(**{f"{self.via_field}__in": ids})


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


def _last_word(column: str):
    # The surname, or the one word of a one-word name: the index accounts_customer_name_last (and the others).
    return Lower(Func(F(column), Value(r"^.*\s"), Value(""), function="regexp_replace", output_field=TextField()))


def _email_domain(column: str):
    return Lower(Func(F(column), Value("@"), Value(2), function="split_part", output_field=TextField()))


def _lookup(exact: bool) -> str:
    return "exact" if exact else "startswith"


def _name_ways(column: str, value: str) -> list[Way]:
    """A name's start ("jane sm") or its last word's start ("smi"), on the two indexes of the column."""
    ways = [Way(aliases={"_name": Lower(column)}, q=Q(_name__startswith=value))]
    if " " not in value:
        if _postgresql():
            ways.append(Way(aliases={"_last": _last_word(column)}, q=Q(_last__startswith=value)))
        else:  # SQLite (development): a scan of small tables
            ways.append(Way(q=Q(**{f"{column}__icontains": f" {value}"})))
    return ways


def _email_ways(column: str, value: str) -> list[Way]:
    return [Way(aliases={"_email": Lower(column)}, q=Q(_email__startswith=value))]


def _email_domain_ways(column: str, domain: str, *, exact: bool) -> list[Way]:
    if not _postgresql():
        return [Way(q=Q(**{f"{column}__iendswith" if exact else f"{column}__icontains": f"@{domain}"}))]
    return [Way(aliases={"_email_domain": _email_domain(column)}, q=Q(**{f"_email_domain__{_lookup(exact)}": domain}))]


def _domains(domain: str) -> list[str]:
    # The checkout keeps a domain as typed, so "www.shop.com" may be stored with its www.: look for both.
    return [domain, f"www.{domain}"]


def _customer_ways(key: SearchKey, *, exact: bool) -> list[Way]:
    value, lookup = key.value, _lookup(exact)
    if key.kind == "stripe":
        if key.prefix == "cus_":
            return [Way(q=Q(**{f"stripe_customer_id__{lookup}": value}))]
        return [Way(via=subscription_ids_for_stripe_id(key, exact=exact, field="customer_id"))]
    if key.kind == "email":
        return [
            *_email_ways("email", value),
            Way(
                via=CustomerMembership.objects.filter(user__in=_user_ids(_email_ways("email", value))).values_list(
                    "customer_id", flat=True
                )
            ),
        ]
    if key.kind == "email_domain":
        return _email_domain_ways("email", value, exact=True)
    if key.kind == "domain":
        # "jane.d" may be the start of an address as well as of a domain.
        return [*_email_domain_ways("email", value, exact=False), *_email_ways("email", value)]
    if key.kind == "text":
        return [
            *_name_ways("name", value),
            *_email_ways("email", value),
            *[
                Way(
                    via=CustomerMembership.objects.filter(user__in=_user_ids([way])).values_list(
                        "customer_id", flat=True
                    )
                )
                for way in _name_ways("full_name", value)
            ],
        ]
    return []


def _user_ids(ways: list[Way]) -> QuerySet:
    way = ways[0]
    return User.objects.alias(**way.aliases).filter(way.q).order_by().values("pk")[: GROUP_ROWS + 1]


def _order_ways(key: SearchKey, *, exact: bool) -> list[Way]:
    value, lookup = key.value, _lookup(exact)
    if key.kind == "stripe":
        if key.prefix == "cs_":
            return [Way(q=Q(**{f"stripe_session_id__{lookup}": value}))]
        if key.prefix == "cus_":
            return [Way(q=Q(**{f"stripe_customer_id__{lookup}": value}))]
        return [Way(via=subscription_ids_for_stripe_id(key, exact=exact, field="checkout_session_id"))]
    if key.kind == "order_id":
        return [Way(q=Q(pk=value))]
    if key.kind == "email":
        return _email_ways("email", value)
    if key.kind == "email_domain":
        return _email_domain_ways("email", value, exact=True)
    session_domain = Lower(KT("domain_info__value"))
    if key.kind == "domain":
        return [
            *[Way(aliases={"_domain": session_domain}, q=Q(_domain__startswith=domain)) for domain in _domains(value)],
            *_email_domain_ways("email", value, exact=False),
            *_email_ways("email", value),
        ]
    if key.kind == "text":
        return [
            *_name_ways("customer_name", value),
            *_email_ways("email", value),
            Way(aliases={"_domain": session_domain}, q=Q(_domain__startswith=value)),
        ]
    return []


def _service_ways(key: SearchKey, *, exact: bool) -> list[Way]:
    value, lookup = key.value, _lookup(exact)
    if key.kind == "stripe":
        if key.prefix == "sub_":
            return [Way(q=Q(**{f"stripe_subscription_id__{lookup}": value}))]
        if key.prefix == "cus_":
            return [Way(q=Q(**{f"stripe_customer_id__{lookup}": value}))]
        return [Way(via=subscription_ids_for_stripe_id(key, exact=exact, field="pk"))]
    if key.kind == "order_id":
        return [Way(q=Q(checkout_session_id=value))]
    if key.kind == "email":
        return [
            Way(
                via=Customer.objects.alias(_email=Lower("email"))
                .filter(_email__startswith=value)
                .order_by()
                .values_list("pk", flat=True),
                via_field="customer_id",
            )
        ]
    domain_way = [
        Way(aliases={"_domain": Lower("domain")}, q=Q(_domain__startswith=domain))
        for domain in (_domains(value) if key.kind == "domain" else [value])
    ]
    if key.kind == "domain":
        return domain_way
    if key.kind == "text":
        # Control-panel usernames are lower case (provisioning.support.PANEL_USERNAME).
        return [
            *domain_way,
            Way(
                via=HostingAccount.objects.filter(username__startswith=value)
                .order_by()
                .values_list("subscription_id", flat=True)
            ),
        ]
    return []


def subscription_ids_for_stripe_id(key: SearchKey, *, exact: bool, field: str) -> QuerySet:
    """`field` of the subscriptions a Stripe id belongs to, wherever that kind of id is kept: sessions (cs_),
    subscriptions (sub_), our invoices (in_, and pi_ for what each paid), refunds (pi_, ch_), and dj-stripe's
    charges (ch_ of a payment never refunded, exactly: its unique id)."""
    lookup, value = _lookup(exact), key.value
    if key.prefix == "cs_":
        return Subscription.objects.filter(**{f"checkout_session__stripe_session_id__{lookup}": value}).values_list(
            field, flat=True
        )
    if key.prefix == "sub_":
        return Subscription.objects.filter(**{f"stripe_subscription_id__{lookup}": value}).values_list(field, flat=True)
    if key.prefix == "cus_":
        return Subscription.objects.filter(**{f"stripe_customer_id__{lookup}": value}).values_list(field, flat=True)
    # Invoices and refunds: their subscriptions' ids first (each lookup bounded, on its own index), as one query
    # ORing two subqueries would make PostgreSQL scan the subscriptions table.
    ids: list[int] = []
    if key.prefix == "in_":
        ids = _ids(SubscriptionInvoice, f"stripe_invoice_id__{lookup}", value)
    elif key.prefix == "pi_":
        ids = _ids(SubscriptionInvoice, f"stripe_payment_intent_id__{lookup}", value) + _ids(
            RefundRecord, f"stripe_payment_intent_id__{lookup}", value
        )
    elif key.prefix == "ch_":
        ids = _ids(RefundRecord, f"stripe_charge_id__{lookup}", value)
        if exact:
            ids += _charge_subscription_ids(value)
    return Subscription.objects.filter(pk__in=set(ids)).values_list(field, flat=True)


def _ids(model, lookup: str, value: str) -> list[int]:
    return list(
        model.objects.filter(**{lookup: value}).order_by().values_list("subscription_id", flat=True)[: GROUP_ROWS + 1]
    )


def _charge_subscription_ids(charge_id: str) -> list[int]:
    """A charge dj-stripe stored (by its unique id) → the invoice or payment it paid → our subscription."""
    from djstripe.models import Charge

    charge = Charge.objects.filter(id=charge_id).values("invoice_id", "payment_intent_id").first()
    if not charge:
        return []
    match = Q(pk__in=[])
    if charge["invoice_id"]:
        match |= Q(stripe_invoice_id=charge["invoice_id"])
    if charge["payment_intent_id"]:
        match |= Q(stripe_payment_intent_id=charge["payment_intent_id"])
    return list(SubscriptionInvoice.objects.filter(match).values_list("subscription_id", flat=True)[:GROUP_ROWS])


_WAYS = {CUSTOMERS: _customer_ways, ORDERS: _order_ways, SERVICES: _service_ways}
_MODELS = {CUSTOMERS: Customer, ORDERS: CheckoutSession, SERVICES: Subscription}


# --- The lists' search boxes ------------------------------------------------------------------------------------------


def queryset_search(*, queryset: QuerySet, kind: str, term: str) -> QuerySet:
    """A list's search box (get_search_results): the ways of its kind ORed into one filter; every row they find,
    for the list to order and page. A term too short to search for finds nothing (never the whole table)."""
    if not term.strip():
        return queryset
    key = search_key(term)
    if key is None:
        return queryset.none()
    ways = _WAYS[kind](key, exact=False)
    if not ways:
        return queryset.none()
    match = Q(pk__in=[])
    aliases = {}
    for number, way in enumerate(ways):
        # Each way names its alias alike (_name, _email): numbered here, as they share one query.
        renamed = {f"{name}{number}": expression for name, expression in way.aliases.items()}
        aliases.update(renamed)
        match |= _renamed_q(way.filter_q(bounded=False), {name: f"{name}{number}" for name in way.aliases})
    return queryset.alias(**aliases).filter(match)


def _renamed_q(q: Q, names: dict[str, str]) -> Q:
    if not names:
        return q
    children = []
    for child in q.children:
        if isinstance(child, Q):
            children.append(_renamed_q(child, names))
        else:
            lookup, value = child
            alias, _, rest = lookup.partition("__")
            children.append((f"{names.get(alias, alias)}{'__' + rest if rest else ''}", value))
    renamed = Q(*children, _connector=q.connector, _negated=q.negated)
    return renamed


# --- The search box at the top of every page -----------------------------------------------------------------------


@dataclass
class SearchGroup:
    kind: str
    label: str
    rows: list
    more: bool  # more than GROUP_ROWS found: the list behind `see_all_url` has them all
    see_all_url: str


@dataclass
class SearchResults:
    term: str
    key: SearchKey | None
    groups: list[SearchGroup]
    too_short: bool = False
    exact: bool = False  # a Stripe id found as typed (not as the start of ids)
    redirect_url: str | None = None  # one exact hit of an id: its page

    @property
    def found(self) -> bool:
        return any(group.rows for group in self.groups)


def _group_rows(kind: str, ways: list[Way]) -> tuple[list, bool]:
    model = _MODELS[kind]
    seen, rows, more = set(), [], False
    for way in ways:
        queryset = model.objects.alias(**way.aliases).filter(way.filter_q(bounded=True)).order_by()
        found = list(_with_related(kind, queryset)[: GROUP_ROWS + 1])
        more = more or len(found) > GROUP_ROWS
        for row in found[:GROUP_ROWS]:
            if row.pk not in seen:
                seen.add(row.pk)
                rows.append(row)
    rows = sorted(rows[:GROUP_ROWS], key=_ROW_ORDER[kind])
    if kind == ORDERS:
        from backoffice.attention import checkout_sessions_setup_attach

        checkout_sessions_setup_attach(rows)  # for the status as the order list shows it
    return rows, more or len(rows) > GROUP_ROWS


_ROW_ORDER = {
    CUSTOMERS: lambda customer: ((customer.name or customer.email).lower(), customer.pk),
    ORDERS: lambda session: -session.created_at.timestamp(),
    SERVICES: lambda subscription: (subscription.domain, subscription.pk),
}


def _with_related(kind: str, queryset: QuerySet) -> QuerySet:
    if kind == ORDERS:
        return queryset.select_related("price__product")
    if kind == SERVICES:
        return queryset.select_related("customer", "product", "hosting_account")
    return queryset


def global_search(*, term: str, kinds: frozenset[str] = frozenset(_WAYS)) -> SearchResults:
    """Customers, orders and services the term names (see the module's docstring), each kind at most GROUP_ROWS,
    only of `kinds` (those the person may see). A Stripe id is looked up exactly first; one exact hit of its own
    kind (the session of a cs_, the customer of a cus_, the subscription of the others) gives `redirect_url`."""
    term = " ".join(term.split())
    key = search_key(term)
    if key is None:
        return SearchResults(term=term, key=None, groups=[], too_short=len(term) < MIN_TERM_LENGTH)
    order = [kind for kind in (CUSTOMERS, ORDERS, SERVICES) if kind in kinds]
    passes = (True, False) if key.kind == "stripe" else (False,)
    for exact in passes:
        groups = []
        for kind in order:
            rows, more = _group_rows(kind, _WAYS[kind](key, exact=exact))
            groups.append(
                SearchGroup(
                    kind=kind,
                    label=KIND_LABELS[kind],
                    rows=rows,
                    more=more,
                    see_all_url=f"{reverse(KIND_CHANGELISTS[kind])}?{urlencode({'q': term})}",
                )
            )
        results = SearchResults(term=term, key=key, groups=groups, exact=exact)
        if results.found:
            break
    if results.exact or key.kind == "order_id":
        primary = STRIPE_PRIMARY_KIND.get(key.prefix, ORDERS)
        group = next((group for group in results.groups if group.kind == primary), None)
        if group is not None and len(group.rows) == 1:
            row = group.rows[0]
            results.redirect_url = reverse(f"admin:{row._meta.app_label}_{row._meta.model_name}_change", args=[row.pk])
    return results


# --- The page ---------------------------------------------------------------------------------------------------------


def search_view(request):
    """GET /admin/backoffice/search/?q=...: the results of the box at the top of every page, grouped by kind, only
    the kinds the person may see (403 with none of them); one exact hit of an id opens its page."""
    from django.contrib import admin
    from django.core.exceptions import PermissionDenied
    from django.http import HttpResponseRedirect
    from django.template.response import TemplateResponse

    from backoffice.attention import checkout_session_status_label

    kinds = frozenset(kind for kind, permission in KIND_PERMISSIONS.items() if request.user.has_perm(permission))
    if not kinds:
        raise PermissionDenied
    term = request.GET.get("q", "")
    results = global_search(term=term, kinds=kinds) if term.strip() else SearchResults(term="", key=None, groups=[])
    if results.redirect_url:
        return HttpResponseRedirect(results.redirect_url)
    for group in results.groups:
        if group.kind == ORDERS:
            for session in group.rows:
                session.status_label, session.status_level = checkout_session_status_label(session)
    context = {
        **admin.site.each_context(request),
        "title": f"Search: {results.term}" if results.term else "Search",
        "results": results,
        "min_length": MIN_TERM_LENGTH,
        "may_see_customers": request.user.has_perm(KIND_PERMISSIONS[CUSTOMERS]),
    }
    return TemplateResponse(request, "admin/backoffice/search.html", context)
