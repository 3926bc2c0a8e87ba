"""The team's audit log (/admin/backoffice/audit/): who did what to which object, newest first, from the admin's log
(LogEntry: edits, support actions, billing actions taken in the admin, CSV exports) and from billing.BillingAction
for the decisions the admin's log never sees (customers' own cancellations and plan changes in the client area,
and billing rules such as the refund of a failed setup).

Filterable by person, action, object type and date range; paged by position ("older" links carrying the last row's
time and id), never by counting the table.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django import forms
from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode

from backoffice.export import EXPORT_ACTION_FLAG, EXPORT_LOG_LABEL, export_log_filters

AUDIT_PERMISSION = "backoffice.view_audit_log"
PAGE_SIZE = 50
PEOPLE_LIMIT = 500  # staff in the person filter; a hosting company's team is far smaller
# Billing actions sent from the admin's subscription page carry keys made by
# backoffice.subscription_actions.new_idempotency_key ("staff-..."): the admin's log already has them.
STAFF_KEY_PREFIX = "staff-"
CLIENT_KEY_PREFIX = "client-"  # accounts.views: the client area's own forms
EMAIL_SEND_AGAIN_LABEL = "Send again"  # provisioning.admin's e-mail list action
RULES = "rules"
CUSTOMERS = "customers"
# Rank of each source at one same instant: a page boundary between two rows of the same microsecond stays exact.
_LOG, _BILLING = 1, 0


# --- Actions ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditAction:
    key: str  # in the URL
    label: str
    log: Q | None  # which admin log entries; None: none
    billing_kind: str | None = None  # which BillingAction rows; None: none


def _labelled_actions() -> list[tuple[str, str, str | None]]:
    """(key, label, billing kind) of each action logged as "<label>: <what happened>": the order page's support
    actions and the subscription page's billing actions, read from the modules that log them, so a new one shows up
    here without a second list to keep."""
    from backoffice.admin import checkout as checkout_admin
    from backoffice.admin import provisioning as provisioning_admin
    from backoffice.subscription_actions import SPECS
    from billing.models import BillingActionKind

    found = [(f"support:{name}", label, None) for name, label in getattr(checkout_admin, "_ACTION_NAMES", {}).items()]
    found += [
        (f"setup:{tool.name}", tool.label, None) for tool in getattr(provisioning_admin, "SETUP_TOOLS", {}).values()
    ]
    found.append(("email:send_again", EMAIL_SEND_AGAIN_LABEL, None))
    for kind, kind_label in BillingActionKind.choices:
        spec = SPECS.get(kind)
        found.append((f"billing:{kind}", spec.label if spec else kind_label, kind))
    return found


def audit_actions() -> list[AuditAction]:
    labelled = _labelled_actions()
    prefixes = [label + ":" for _, label, _ in labelled]
    edits = Q(action_flag=CHANGE)
    for prefix in prefixes:
        edits &= ~Q(change_message__startswith=prefix)
    actions = [
        AuditAction("add", "Added", Q(action_flag=ADDITION)),
        AuditAction("change", "Changed (edits)", edits),
        AuditAction("delete", "Deleted", Q(action_flag=DELETION)),
        AuditAction("export", "CSV export", Q(action_flag=EXPORT_ACTION_FLAG)),
    ]
    for key, label, kind in labelled:
        log = Q(action_flag=CHANGE, change_message__startswith=label + ":")
        actions.append(AuditAction(key, label, log, kind))
    return actions


def _log_entry_action(entry: LogEntry, labels: list[str]) -> tuple[str, str]:
    """(action, details) as the page shows them: "Retry provisioning", "sent again ..."."""
    if entry.action_flag == EXPORT_ACTION_FLAG:
        return "CSV export", entry.change_message.removeprefix(EXPORT_LOG_LABEL + ": ")
    message = entry.get_change_message()
    if entry.action_flag == ADDITION:
        return "Added", message
    if entry.action_flag == DELETION:
        return "Deleted", message
    for label in labels:
        if message.startswith(label + ":"):
            details = message[len(label) + 1 :].strip()
            while details.startswith(label + ":"):  # "Re-read from Stripe: Re-read from Stripe: ..."
                details = details[len(label) + 1 :].strip()
            return label, details
    return "Changed", message


# --- Filters and position -----------------------------------------------------------------------------------------------


class AuditFilterForm(forms.Form):
    person = forms.ChoiceField(required=False, label="Person")
    action = forms.ChoiceField(required=False, label="Action")
    object_type = forms.ChoiceField(required=False, label="Object type")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}), help_text="Inclusive."
    )

    def __init__(self, *args, people, actions, object_types, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["person"].choices = [
            ("", "Everyone"),
            (RULES, "Automatic (billing rules)"),
            (CUSTOMERS, "Customers (client area)"),
            *people,
        ]
        self.fields["action"].choices = [("", "Any action"), *((action.key, action.label) for action in actions)]
        self.fields["object_type"].choices = [("", "Any object"), *object_types]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The first day comes after the last.")
        return data


@dataclass(frozen=True)
class Position:
    """Where a page starts: rows strictly older than (at, rank, id)."""

    at: datetime
    rank: int
    id: int

    def __str__(self) -> str:
        return f"{self.at.isoformat()}~{self.rank}~{self.id}"

    @classmethod
    def parse(cls, text: str | None) -> "Position | None":
        try:
            at, rank, pk = (text or "").split("~")
            moment = parse_datetime(at)
            if moment is None or rank not in ("0", "1"):
                return None
            return cls(moment, int(rank), int(pk))
        except ValueError:
            return None


@dataclass
class AuditRow:
    at: datetime
    rank: int
    id: int
    person: str
    person_id: int | None
    action: str
    object_type: str
    object_repr: str
    object_url: str | None
    details: str

    @property
    def position(self) -> Position:
        return Position(self.at, self.rank, self.id)


@dataclass
class AuditPage:
    rows: list[AuditRow]
    older: Position | None  # None: this is the last page


# --- Reading -----------------------------------------------------------------------------------------------------------------


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_log_page(*, user, filters: dict, after: Position | None = None, size: int = PAGE_SIZE) -> AuditPage:
    """One page of the log, newest first: `size` rows older than `after`. Two queries (one per source), each with
    LIMIT size + 1, merged by time."""
    from accounts.models import Subscription
    from billing.models import BillingAction

    actions = {action.key: action for action in audit_actions()}
    labels = [action.label for action in actions.values() if action.key.startswith(("support:", "billing:"))]
    action = actions.get(filters.get("action") or "")
    person = filters.get("person") or ""
    object_type = filters.get("object_type") or ""
    since, until = filters.get("since"), filters.get("until")

    log = LogEntry.objects.select_related("user", "content_type")
    if action is not None:
        log = log.filter(action.log) if action.log is not None else log.none()
    if person in (RULES, CUSTOMERS):
        log = log.none()
    elif person:
        log = log.filter(user_id=person)
    if object_type:
        log = log.filter(content_type_id=object_type)
    if since:
        log = log.filter(action_time__gte=_day_start(since))
    if until:
        log = log.filter(action_time__lt=_day_start(until + timedelta(days=1)))
    if after is not None:
        log = log.filter(
            Q(action_time__lt=after.at) | Q(action_time=after.at, id__lt=after.id)
            if after.rank == _LOG
            else Q(action_time__lt=after.at)
        )

    billing = BillingAction.objects.select_related("actor", "subscription__customer", "subscription__product").exclude(
        idempotency_key__startswith=STAFF_KEY_PREFIX
    )
    subscription_type = ContentType.objects.get_for_model(Subscription)
    if action is not None:
        billing = billing.filter(kind=action.billing_kind) if action.billing_kind else billing.none()
    if person == RULES:
        billing = billing.filter(actor__isnull=True)
    elif person == CUSTOMERS:
        billing = billing.filter(actor__isnull=False)
    elif person:
        billing = billing.filter(actor_id=person)
    if object_type and str(object_type) != str(subscription_type.pk):
        billing = billing.none()
    if since:
        billing = billing.filter(created_at__gte=_day_start(since))
    if until:
        billing = billing.filter(created_at__lt=_day_start(until + timedelta(days=1)))
    if after is not None:
        billing = billing.filter(
            Q(created_at__lt=after.at) | Q(created_at=after.at, id__lt=after.id)
            if after.rank == _BILLING
            else Q(created_at__lte=after.at)
        )

    rows = [_log_row(entry, user=user, labels=labels) for entry in log.order_by("-action_time", "-id")[: size + 1]]
    rows += [
        _billing_row(decision, user=user, subscription_type=subscription_type)
        for decision in billing.order_by("-created_at", "-id")[: size + 1]
    ]
    rows.sort(key=lambda row: (row.at, row.rank, row.id), reverse=True)
    page = rows[:size]
    return AuditPage(rows=page, older=page[-1].position if len(rows) > size else None)


def _person(person) -> str:
    if person is None:
        return "-"
    return f"{person.full_name} ({person.email})" if getattr(person, "full_name", "") else person.email


def _may_view(user, opts) -> bool:
    return user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or user.has_perm(
        f"{opts.app_label}.change_{opts.model_name}"
    )


def _log_row(entry: LogEntry, *, user, labels: list[str]) -> AuditRow:
    action, details = _log_entry_action(entry, labels)
    model = entry.content_type.model_class() if entry.content_type_id else None
    url = None
    if model is not None and _may_view(user, model._meta):
        if entry.action_flag == EXPORT_ACTION_FLAG:
            filters = export_log_filters(entry.change_message)
            try:
                url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist") + (filters or "")
            except NoReverseMatch:
                url = None
        elif entry.action_flag != DELETION:
            url = entry.get_admin_url() or None
    return AuditRow(
        at=entry.action_time,
        rank=_LOG,
        id=entry.pk,
        person=_person(entry.user),
        person_id=entry.user_id,
        action=action,
        object_type=str(model._meta.verbose_name).capitalize() if model else "-",
        object_repr=entry.object_repr,
        object_url=url,
        details=details,
    )


def _billing_row(decision, *, user, subscription_type: ContentType) -> AuditRow:
    from accounts.models import Subscription

    subscription = decision.subscription
    url = (
        reverse("admin:accounts_subscription_change", args=[subscription.pk])
        if _may_view(user, Subscription._meta)
        else None
    )
    if decision.actor_id is None:
        person = "Automatic (billing rule)"
    elif decision.idempotency_key.startswith(CLIENT_KEY_PREFIX):
        person = f"{_person(decision.actor)}, in the client area"
    else:
        person = _person(decision.actor)
    details = [f"{decision.get_status_display()}", decision.reason]
    if decision.amount is not None:
        from core.money import money_format

        details.insert(1, money_format(decision.amount, subscription.currency))
    if decision.error:
        details.append(f"error: {decision.error}")
    return AuditRow(
        at=decision.created_at,
        rank=_BILLING,
        id=decision.pk,
        person=person,
        person_id=decision.actor_id,
        action=decision.get_kind_display(),
        object_type="Subscription",
        object_repr=str(subscription),
        object_url=url,
        details=" · ".join(part for part in details if part),
    )


def _people_choices(*, person: str | None = None) -> list[tuple[str, str]]:
    """Staff, and the person asked for when that is someone else (a customer's link from a row)."""
    from accounts.models import User

    wanted = Q(is_staff=True)
    if person and person.isdigit():
        wanted |= Q(pk=int(person))
    return [
        (str(pk), f"{name} ({email})" if name else email)
        for pk, email, name in User.objects.filter(wanted)
        .order_by("email")
        .values_list("pk", "email", "full_name")[:PEOPLE_LIMIT]
    ]


def _object_type_choices() -> list[tuple[str, str]]:
    types = ContentType.objects.get_for_models(*admin.site._registry)
    return sorted(
        (
            (str(ct.pk), f"{model._meta.app_config.verbose_name}: {str(model._meta.verbose_name).capitalize()}")
            for model, ct in types.items()
        ),
        key=lambda choice: choice[1].lower(),
    )


# --- The page -------------------------------------------------------------------------------------------------------------


def audit_log_view(request):
    """GET only: the filter form, one page of rows, and an "Older" link carrying the last row's position."""
    if not request.user.has_perm(AUDIT_PERMISSION):
        raise PermissionDenied
    actions = audit_actions()
    form = AuditFilterForm(
        request.GET or None,
        people=_people_choices(person=request.GET.get("person")),
        actions=actions,
        object_types=_object_type_choices(),
    )
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    after = Position.parse(request.GET.get("after"))
    page = audit_log_page(user=request.user, filters=filters, after=after)
    here = reverse("backoffice:audit_log")
    kept = {name: value for name, value in request.GET.items() if name in form.fields and value}
    context = {
        **admin.site.each_context(request),
        "title": "Audit log",
        "form": form,
        "page": page,
        "filtered": bool(filters and any(filters.values())),
        "older_url": f"{here}?{urlencode({**kept, 'after': str(page.older)})}" if page.older else None,
        "newest_url": f"{here}?{urlencode(kept)}" if after else None,
        "person_url": f"{here}?person=",
    }
    return TemplateResponse(request, "admin/backoffice/audit_log.html", context)
