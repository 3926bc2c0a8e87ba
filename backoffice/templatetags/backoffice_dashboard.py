"""The admin's first page: the last 30 days as charts drawn on the server (inline SVG, no script, no CDN)."""

from datetime import timedelta
from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from backoffice.attention import COUNT_MAX, KINDS, attention_counts
from backoffice.selectors import FAILED_SETUPS_COUNT_CAP, dashboard_figures_cached, failed_setups_heading_for_refund
from core.money import money_format

register = template.Library()

SERIES = [
    ("created", "Created", "#447e9b", {}),
    ("completed", "Completed", "#2e7d32", {"status__exact": "completed"}),
    ("expired", "Expired", "#ef6c00", {"status__exact": "expired"}),
    ("failed", "Failed or held for review", "#c62828", {"status__in": "payment_failed,needs_review"}),
]
# The labels' text in a darker shade of each bar's colour: readable on white (4.5:1 at least).
TEXT_COLOURS = {"#447e9b": "#2f5d75", "#ef6c00": "#a04800"}
BAR_AREA_HEIGHT = 60
BAR_WIDTH = 14
BAR_GAP = 4


def _midnight(day) -> str:
    return f"{day.isoformat()} 00:00:00+00:00"


def _sessions_url(**params) -> str:
    return f"{reverse('admin:checkout_checkoutsession_changelist')}?{urlencode(params)}"


@register.inclusion_tag("backoffice/dashboard.html", takes_context=True)
def backoffice_dashboard(context):
    """The admin index's dashboard: what needs attention, the failed setups heading for a refund, the 30-day funnel
    and revenue (counted at most a minute ago, the page says when: dashboard_figures_cached) and the jobs' state."""
    user = context["request"].user
    now = timezone.now()
    figures = dashboard_figures_cached(now=now)
    may_see_sessions = user.has_perm("checkout.view_checkoutsession")
    may_see_jobs = user.has_perm("provisioning.view_provisioningjob")
    failed_setups, failed_setups_total = _failed_setups(now=now) if may_see_jobs else ([], 0)
    revenue = _revenue_bars(figures)
    return {
        "attention": _attention(user=user, now=now) if may_see_sessions else [],
        "failed_setups": failed_setups,
        "failed_setups_total": failed_setups_total,
        "failed_setups_cap": FAILED_SETUPS_COUNT_CAP,
        "auto_refund_hours": settings.PROVISIONING_AUTO_REFUND_AFTER_HOURS,
        "now": now,
        "charts": [_funnel_chart(figures, *series) for series in SERIES],
        "revenue": revenue,
        "revenue_height": len(revenue) * 22,
        "jobs": _job_bars(figures),
        "since": figures.since,
        "as_of": figures.as_of,
        "first_day": figures.days[0],
        "last_day": figures.days[-1],
        "bar_height": BAR_AREA_HEIGHT,
        "bar_width": BAR_WIDTH,
        "may_see_sessions": may_see_sessions,
        "may_see_jobs": may_see_jobs,
    }


def _funnel_chart(figures, key: str, label: str, colour: str, filters: dict) -> dict:
    """One series of the funnel: a bar a day, each linking to that day's orders in the series' filter."""
    values = figures.funnel[key]
    peak = max(values) or 1
    bars = []
    for index, (day, value) in enumerate(zip(figures.days, values, strict=True)):
        height = round(value / peak * BAR_AREA_HEIGHT)
        bars.append(
            {
                "x": index * (BAR_WIDTH + BAR_GAP),
                "y": BAR_AREA_HEIGHT - height,
                "height": max(height, 1 if value else 0),
                "value": value,
                "day": day,
                "url": _sessions_url(
                    created_at__gte=_midnight(day), created_at__lt=_midnight(day + timedelta(days=1)), **filters
                ),
            }
        )
    return {
        "key": key,
        "label": label,
        "colour": colour,
        "text_colour": TEXT_COLOURS.get(colour, colour),
        "bars": bars,
        "total": sum(values),
        "peak": max(values),
        "width": len(values) * (BAR_WIDTH + BAR_GAP),
        "url": _sessions_url(created_at__gte=_midnight(figures.days[0]), **filters),
    }


def _revenue_bars(figures) -> list[dict]:
    """Revenue per plan and currency over the window, each bar linking to the plan's paid orders."""
    peak_revenue = max((row["amount"] for row in figures.revenue), default=0) or 1
    return [
        {
            **row,
            "money": money_format(row["amount"], row["currency"]),
            "width": round(row["amount"] / peak_revenue * 300),
            "url": _sessions_url(
                product=row["product_code"], status__exact="completed", created_at__gte=_midnight(figures.days[0])
            ),
            "y": index * 22,
        }
        for index, row in enumerate(figures.revenue)
    ]


def _job_bars(figures) -> list[dict]:
    """Failed jobs and jobs waiting too long, each linking to the job list filtered to it."""
    job_list = reverse("admin:provisioning_provisioningjob_changelist")
    jobs_peak = max(figures.jobs_failed, figures.jobs_waiting, 1)
    return [
        {
            "label": "Failed: need a person",
            "count": figures.jobs_failed,
            "colour": "#c62828",
            "width": round(figures.jobs_failed / jobs_peak * 300),
            "url": f"{job_list}?attention=failed",
            "y": 0,
        },
        {
            "label": "Waiting too long",
            "count": figures.jobs_waiting,
            "colour": "#ef6c00",
            "width": round(figures.jobs_waiting / jobs_peak * 300),
            "url": f"{job_list}?attention=waiting",
            "y": 22,
        },
    ]


def _attention(*, user, now) -> list[dict]:
    """Needs attention, by kind: each count (up to COUNT_MAX) links to the order list filtered to it, and to the
    customer list for staff who may read customers."""
    counts = attention_counts(now=now)
    orders = reverse("admin:checkout_checkoutsession_changelist")
    customers = reverse("admin:accounts_customer_changelist") if user.has_perm("accounts.view_customer") else None
    return [
        {
            "kind": kind,
            "label": label,
            "count": counts[kind],
            "shown": f"{COUNT_MAX}+" if counts[kind] > COUNT_MAX else str(counts[kind]),
            "url": f"{orders}?attention={kind}",
            "customers_url": f"{customers}?attention={kind}" if customers else None,
        }
        for kind, label in KINDS
    ]


def _failed_setups(*, now) -> tuple[list, int]:
    """The failed setups heading for an automatic refund, with their links and whether the refund is due."""
    failed_setups, total = failed_setups_heading_for_refund()
    for setup in failed_setups:
        setup.job_url = reverse("admin:provisioning_provisioningjob_change", args=[setup.job.pk])
        setup.subscription_url = reverse("admin:accounts_subscription_change", args=[setup.job.subscription_id])
        setup.overdue = setup.refund_at is not None and setup.refund_at <= now
    return failed_setups, total
