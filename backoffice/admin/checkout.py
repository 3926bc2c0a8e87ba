"""Support's view of orders: checkout sessions, read-only, each with the timeline of what happened to it and the
actions that fix what can be fixed (retry provisioning, resend the set-password e-mail, expire, re-read from Stripe).

Built for a table of millions of rows: the search goes to one index per kind of term, filters offer fixed choices
(never a DISTINCT over the table), the paginator does not count the whole table, and the date drill-down reads only
the first and last dates.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html

from backoffice.admin_tools import (
    EstimatedCountPaginator,
    ReadOnlyAdminMixin,
    date_range_queryset,
    fixed_choices_filter,
    stripe_link,
)
from backoffice.attention import (
    CheckoutSessionAttentionFilter,
    checkout_session_status_label,
    checkout_sessions_setup_attach,
    session_attention,
)
from backoffice.customer_page import customer_for_order, customer_pinned_notes
from backoffice.export import ORDERS_EXPORT, CsvExportMixin
from backoffice.search import ORDERS, queryset_search
from backoffice.selectors import checkout_session_timeline
from backoffice.services import (
    support_checkout_session_expire,
    support_checkout_session_reread,
    support_provisioning_job_retry,
    support_set_password_email_resend,
)
from catalog.models import BillingCycle, Product
from checkout.models import CheckoutSession
from core.exceptions import ApplicationError
from core.money import money_format
from provisioning.models import ProvisioningJob

SUPPORT_PERMISSIONS = {
    "retry_job": "backoffice.retry_provisioning_job",
    "resend_set_password": "backoffice.resend_set_password_email",
    "expire": "backoffice.expire_checkout_session",
    "reread": "backoffice.refresh_checkout_session",
}


class ProductFilter(admin.SimpleListFilter):
    title = "product"
    parameter_name = "product"

    def lookups(self, request, model_admin):
        return [(code, f"{name} ({code})") for code, name in Product.objects.values_list("code", "name")]

    def queryset(self, request, queryset):
        return queryset.filter(product_code=self.value()) if self.value() else queryset


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Status second, so that it is in view at any width; a paid order whose setup failed says so (status_label).
    list_display = ("created_at", "status_label", "buyer", "domain", "product_name", "list_amount")
    list_select_related = ("price__product",)
    list_filter = (
        CheckoutSessionAttentionFilter,
        "status",
        ProductFilter,
        # Under `cycle`, the parameter the order list has always used (bookmarks and links carry it).
        fixed_choices_filter("billing_cycle", "billing cycle", BillingCycle.choices, parameter_name="cycle"),
    )
    date_hierarchy = "created_at"
    # The search itself is get_search_results; this only makes Django show the search box.
    search_fields = ("email",)
    search_help_text = (
        "A name, an e-mail address (or @domain), a domain (www. and case do not matter), or the start "
        "of one; a Stripe id (cs_, cus_, sub_, pi_, in_, ch_) or its start; an order id."
    )
    paginator = EstimatedCountPaginator
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice over a million orders, on one click
    show_full_result_count = False
    list_per_page = 50
    actions = ["reread_from_stripe", "expire_at_stripe"]
    export_spec = ORDERS_EXPORT  # "Export CSV" on the list (backoffice/export.py)
    fieldsets = (
        (
            "Order",
            {
                "fields": (
                    "email",
                    "customer_name",
                    "product_code",
                    "billing_cycle",
                    "amount_money",
                    "discount_money",
                    "coupon_code",
                    "trial_days",
                    "domain",
                    "price",
                )
            },
        ),
        ("Stripe", {"fields": ("stripe_session_link", "stripe_customer_link", "stripe_url", "expires_at")}),
        (
            "Status",
            {
                "fields": (
                    "status_label",
                    "created_at",
                    "updated_at",
                    "completed_at",
                    "id",
                    "metadata",
                    "request_fingerprint",
                )
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)  # every field the page shows: staff read orders, never edit them

    # --- Read-only for everyone (ReadOnlyAdminMixin): sessions are written by the checkout and Stripe's events only ---

    def has_expire_permission(self, request):
        return request.user.has_perm(SUPPORT_PERMISSIONS["expire"])

    def has_reread_permission(self, request):
        return request.user.has_perm(SUPPORT_PERMISSIONS["reread"])

    def get_queryset(self, request):
        return date_range_queryset(super().get_queryset(request))

    def get_changelist(self, request, **kwargs):
        return _OrderChangeList

    def get_search_results(self, request, queryset, search_term):
        # The rules of the search box at the top of every page (backoffice/search.py); no joins, so no duplicates.
        return queryset_search(queryset=queryset, kind=ORDERS, term=search_term), False

    # --- Columns -------------------------------------------------------------------------------------------------

    @admin.display(description="Amount", ordering="amount")
    def amount_money(self, session: CheckoutSession) -> str:
        return money_format(session.amount, session.currency)

    @admin.display(description="Product", ordering="product_code")
    def product_name(self, session: CheckoutSession) -> str:
        # The name, as the order page and the catalog show it; the code only for a session without a price row.
        name = session.price.product.name if session.price_id else session.product_code
        return f"{name} ({session.billing_cycle})"

    @admin.display(description="Amount", ordering="amount")
    def list_amount(self, session: CheckoutSession) -> str:
        # The coupon beside the amount it lowered, rather than a column of its own that is mostly empty.
        money = money_format(session.amount, session.currency)
        if not session.coupon_code:
            return money
        return format_html("{}<br><small>coupon {}</small>", money, session.coupon_code)

    @admin.display(description="Status", ordering="status")
    def status_label(self, session: CheckoutSession) -> str:
        if not hasattr(session, "setup_status"):  # the order page's own copy of the session
            checkout_sessions_setup_attach([session])
        label, level = checkout_session_status_label(session)
        return format_html(
            '<span class="bo-status bo-status-{}" style="{}">{}</span>', level, _STATUS_STYLES.get(level, ""), label
        )

    @admin.display(description="Customer", ordering="customer_name")
    def buyer(self, session: CheckoutSession) -> str:
        # Name and e-mail in one column, so that the list fits beside the filters at 1440 px.
        if not session.customer_name:
            return session.email
        return format_html("{}<br><small>{}</small>", session.customer_name, session.email)

    @admin.display(description="Discount")
    def discount_money(self, session: CheckoutSession) -> str:
        return money_format(session.amount_discount, session.currency) if session.amount_discount else "-"

    @admin.display(description="Domain")
    def domain(self, session: CheckoutSession) -> str:
        return (session.domain_info or {}).get("value") or "-"

    @admin.display(description="Stripe session")
    def stripe_session_link(self, session: CheckoutSession) -> str:
        return stripe_link(session.stripe_session_id)

    @admin.display(description="Stripe customer")
    def stripe_customer_link(self, session: CheckoutSession) -> str:
        return stripe_link(session.stripe_customer_id)

    # --- The order page: the timeline and the support actions ------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        session = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if session is not None and self.has_view_permission(request, session):
            timeline = checkout_session_timeline(session=session)
            for entry in timeline.entries:
                entry.admin_url = _admin_url(request, entry.object)
            # A pending or failed order has no subscription yet, but often a customer already (a returning buyer).
            customer = customer_for_order(session=session, subscription_customer=timeline.customer)
            extra_context.update(
                timeline=timeline,
                attention=session_attention(session=session),
                status_label=checkout_session_status_label(checkout_sessions_setup_attach([session])[0])[0],
                pinned_notes=customer_pinned_notes(customer=customer)
                if request.user.has_perm("backoffice.view_staffnote")
                else [],
                notes_customer=customer if _admin_url(request, customer) else None,
                related_links=[
                    (label, url)
                    for label, url in (
                        ("User", _admin_url(request, timeline.user)),
                        ("Customer", _admin_url(request, customer)),
                        ("Subscription", _admin_url(request, timeline.subscription)),
                    )
                    if url
                ],
                support={name: request.user.has_perm(perm) for name, perm in SUPPORT_PERMISSIONS.items()},
                failed_jobs=[job for job in timeline.jobs if job.status == "failed"],
                title=f"Order of {session.email}",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/support/<str:action>/",
                self.admin_site.admin_view(self.support_action_view),
                name="checkout_checkoutsession_support",
            ),
            *super().get_urls(),
        ]

    def support_action_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if action not in SUPPORT_PERMISSIONS:
            raise Http404("No such action")
        if not request.user.has_perm(SUPPORT_PERMISSIONS[action]):
            raise PermissionDenied
        session = self.get_object(request, object_id)
        if session is None:
            raise Http404("No such checkout session")
        try:
            if action == "retry_job":
                job = ProvisioningJob.objects.filter(
                    pk=request.POST.get("job"), subscription__checkout_session=session
                ).first()
                if job is None:
                    raise Http404("No such provisioning job for this order")
                outcome = support_provisioning_job_retry(job=job, by=request.user)
            elif action == "resend_set_password":
                outcome = support_set_password_email_resend(session=session)
            elif action == "expire":
                outcome = support_checkout_session_expire(session=session)
            else:
                outcome = support_checkout_session_reread(session=session)
        except ApplicationError as error:
            self.log_change(request, session, f"{_ACTION_NAMES[action]}: failed: {error.message}")
            self.message_user(request, f"{_ACTION_NAMES[action]} failed: {error.message}", messages.ERROR)
        else:
            self.log_change(request, session, f"{_ACTION_NAMES[action]}: {outcome.message}")
            self.message_user(request, outcome.message, messages.SUCCESS if outcome.done else messages.WARNING)
        return HttpResponseRedirect(reverse("admin:checkout_checkoutsession_change", args=[session.pk]))

    # --- The same actions on several sessions from the list ----------------------------------------------------------

    @admin.action(description="Re-read from Stripe (and fulfil if paid)", permissions=["reread"])
    def reread_from_stripe(self, request, queryset):
        self._run_on_each(request, queryset[:100], "reread", support_checkout_session_reread)

    @admin.action(description="Expire at Stripe (pending sessions)", permissions=["expire"])
    def expire_at_stripe(self, request, queryset):
        self._run_on_each(request, queryset[:100], "expire", support_checkout_session_expire)

    def _run_on_each(self, request, sessions, action, service):
        done = 0
        for session in sessions:
            try:
                outcome = service(session=session)
            except ApplicationError as error:
                self.log_change(request, session, f"{_ACTION_NAMES[action]}: failed: {error.message}")
                continue
            self.log_change(request, session, f"{_ACTION_NAMES[action]}: {outcome.message}")
            done += outcome.done
        self.message_user(
            request,
            f"{_ACTION_NAMES[action]}: {done} session(s) changed; the others needed nothing "
            "or failed (see each session's history).",
            messages.SUCCESS if done else messages.WARNING,
        )


class _OrderChangeList(ChangeList):
    """The order list, whose page's rows also carry their setup's and account's status (for the Status column), read
    in two queries for the page alone: never part of the list's query or its count."""

    def get_results(self, request):
        super().get_results(request)
        self.result_list = checkout_sessions_setup_attach(list(self.result_list))


# Inline, as the list has no template of its own: an order needing a person stands out in the Status column.
_STATUS_STYLES = {"error": "color: #b71c1c; font-weight: bold;", "warning": "color: #8a4500; font-weight: bold;"}

_ACTION_NAMES = {
    "retry_job": "Retry provisioning",
    "resend_set_password": "Resend set-password e-mail",
    "expire": "Expire at Stripe",
    "reread": "Re-read from Stripe",
}


def _admin_url(request, obj) -> str | None:
    """The object's admin page, when the person looking may see it."""
    if obj is None or not hasattr(obj, "_meta"):
        return None
    opts = obj._meta
    if not request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}") and not request.user.has_perm(
        f"{opts.app_label}.change_{opts.model_name}"
    ):
        return None
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None
