"""Building blocks the apps' admin modules share: money fields, an audit trail with before and after values, a
paginator that never counts a large table, and a date drill-down that never scans one."""

import calendar
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.paginator import Paginator
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django.utils.html import format_html

from backoffice.selectors import table_row_estimate

# Stripe's largest amount: eight digits of minor units.
MAX_AMOUNT_CENTS = 99_999_999


class MoneyField(forms.CharField):
    """Money as staff type it, "7.99" (or "$7.99", "1,234.50"), stored as integer cents (799)."""

    def __init__(self, *, min_cents: int = 1, max_cents: int = MAX_AMOUNT_CENTS, **kwargs):
        self.min_cents, self.max_cents = min_cents, max_cents
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "size": 10, "placeholder": "7.99"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        # Cents from the model (an int) are shown as money; what a person typed is shown back as typed.
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value // 100}.{value % 100:02d}"
        return value

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        text = value.strip().lstrip("$€£").replace(",", "").replace(" ", "")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise forms.ValidationError("Enter an amount such as 7.99.", code="invalid") from None
        if not amount.is_finite() or amount.as_tuple().exponent < -2:
            raise forms.ValidationError("Enter an amount with at most two decimals, such as 7.99.", code="invalid")
        cents = int(amount * 100)
        if cents < self.min_cents:
            raise forms.ValidationError(
                "The amount must be positive."
                if self.min_cents == 1
                else f"The amount must be at least {self.min_cents / 100:.2f}.",
                code="min_value",
            )
        if cents > self.max_cents:
            raise forms.ValidationError(
                f"The amount can be at most {self.max_cents // 100:,}.99 (Stripe's limit).", code="max_value"
            )
        return cents

    def has_changed(self, initial, data):
        try:
            return self.to_python(data) != initial
        except forms.ValidationError:
            return True


class LabelledSplitDateTime(AdminSplitDateTime):
    """The admin's date and time inputs, each with its own accessible name ("Valid from: date"). Django's template
    writes "Date:" and "Time:" as plain text beside the inputs and labels only the first, so a screen reader announces
    the others as unnamed fields (axe-core's "label" rule). The name comes from the field's, which the widget is not
    told: `valid_from` reads "Valid from"."""

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        label = name.replace("_", " ").capitalize()
        for subwidget, part in zip(context["widget"]["subwidgets"], ("date", "time"), strict=True):
            subwidget["attrs"]["aria-label"] = f"{label}: {part}"
        return context


def _display(value) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, (list, tuple, set)) or (hasattr(value, "__iter__") and not isinstance(value, str)):
        return ", ".join(str(item) for item in value) or "(none)"
    return str(value)


def form_changes(form) -> list[str]:
    """ "field: before → after" for each field a form changed (for the admin log)."""
    changes = []
    for name in form.changed_data:
        if name not in form.fields or name not in form.cleaned_data:
            continue
        before = form.initial.get(name)
        after = form.cleaned_data.get(name)
        if hasattr(after, "pk") and not isinstance(after, QuerySet):
            after = after.pk
        if isinstance(after, QuerySet):
            after = sorted(str(item) for item in after)
            before = sorted(str(item) for item in (before or []))
        changes.append(f"{name}: {_display(before)} → {_display(after)}")
    return changes


class AuditedChangeMessageMixin:
    """Admin log entries that say what changed, from what to what ("unit_amount: 799 → 899"), including inline rows,
    instead of Django's bare list of field names. Extra lines (a replaced price) come from `request._audit_notes`."""

    def construct_change_message(self, request, form, formsets, add=False):
        if add:
            return super().construct_change_message(request, form, formsets, add)
        lines = form_changes(form)
        for formset in formsets or []:
            for inline_form in formset.initial_forms:
                if inline_form in formset.deleted_forms:
                    lines.append(f"deleted {formset.model._meta.verbose_name} {inline_form.instance}")
                    continue
                changes = form_changes(inline_form)
                if changes:
                    lines.append(
                        f"{formset.model._meta.verbose_name} #{inline_form.instance.pk}: " + "; ".join(changes)
                    )
            for new in formset.new_objects:
                lines.append(f"added {formset.model._meta.verbose_name} {new}")
        lines.extend(getattr(request, "_audit_notes", []))
        return "\n".join(lines) if lines else "No fields changed."


class ReadOnlyAdminMixin:
    """A model staff read and never write here: its rows come from the checkout, Stripe's events or the workers, and
    what staff may change goes through an action (a billing action, a setup tool, a note's pin)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EstimatedCountPaginator(Paginator):
    """Counts rows only up to a cap, and not at all for the unfiltered table on PostgreSQL (the planner's estimate
    from pg_class.reltuples): a list page costs the same with a thousand rows or a hundred million."""

    count_cap = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        self.estimated = False
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            estimate = table_row_estimate(queryset.model)
            if estimate is not None and estimate > self.count_cap:
                self.estimated = True
                return estimate
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        counted = queryset.order_by()[: self.count_cap + 1].count()
        if counted > self.count_cap:
            self.estimated = True
        return counted


class DateRangeQuerySet(QuerySet):
    """`datetimes()` answered from the first and last value (two index lookups) instead of a DISTINCT over every
    row: the admin's date drill-down then offers every year, month or day in the range, some possibly empty."""

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if not bounds["first"]:
            return []
        first, last = (timezone.localtime(bounds[key]) for key in ("first", "last"))
        tz = first.tzinfo
        values = []
        if kind == "year":
            values = [datetime(year, 1, 1, tzinfo=tz) for year in range(first.year, last.year + 1)]
        elif kind == "month":
            months = range(first.year * 12 + first.month - 1, last.year * 12 + last.month)
            values = [datetime(m // 12, m % 12 + 1, 1, tzinfo=tz) for m in months]
        elif kind == "day":
            # Only called inside one month (the drill-down's month level).
            _, days = calendar.monthrange(first.year, first.month)
            start = first.day if (first.year, first.month) == (last.year, last.month) else 1
            end = last.day if (first.year, first.month) == (last.year, last.month) else days
            values = [datetime(first.year, first.month, day, tzinfo=tz) for day in range(start, end + 1)]
        return values if order == "ASC" else list(reversed(values))


def date_range_queryset(queryset: QuerySet) -> QuerySet:
    clone = queryset.all()
    clone.__class__ = type("DateRange" + queryset.__class__.__name__, (DateRangeQuerySet, queryset.__class__), {})
    return clone


def stripe_link(stripe_id: str | None) -> str:
    """The id as a link to its page in Stripe's dashboard (a new tab), or as text when Stripe has no page for it."""
    from backoffice.selectors import stripe_dashboard_url

    url = stripe_dashboard_url(stripe_id)
    if not url:
        return stripe_id or "-"
    return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, stripe_id)


def fixed_choices_filter(
    field: str, title: str, choices: list[tuple[str, str]], *, parameter_name: str | None = None
) -> type[admin.SimpleListFilter]:
    """A list filter over a field whose values are known in advance. Django's filter on a field without `choices`
    reads its options with a SELECT DISTINCT over the whole table on every list page (over 100 ms at a million rows);
    this one lists `choices` and filters by equality, under the same URL parameter (`<field>__exact`), or under
    `parameter_name` where links already carry another one."""

    class FixedChoicesFilter(admin.SimpleListFilter):
        def lookups(self, request, model_admin):
            return choices

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    FixedChoicesFilter.title = title
    FixedChoicesFilter.parameter_name = parameter_name or f"{field}__exact"
    return FixedChoicesFilter
