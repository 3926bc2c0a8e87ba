"""Staff's view of people and billing accounts: users, customers and subscriptions, linked to each other and to the
checkout sessions that made them; searchable by e-mail address and Stripe ids, each on an index. The subscription
page carries the billing overview and staff's billing actions (backoffice.subscription_actions)."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import DateTimeField
from django.db.models.functions import Lower
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from accounts.models import Customer, CustomerMembership, Subscription, User
from backoffice.admin_tools import (
    EstimatedCountPaginator,
    LabelledSplitDateTime,
    ReadOnlyAdminMixin,
    fixed_choices_filter,
    stripe_link,
)
from backoffice.attention import CustomerAttentionFilter
from backoffice.customer_page import customer_page, customer_pinned_notes
from backoffice.export import CUSTOMERS_EXPORT, SUBSCRIPTIONS_EXPORT, CsvExportMixin
from backoffice.models import StaffNote
from backoffice.notes import StaffNoteForm, note_create, note_pin_set
from backoffice.search import CUSTOMERS, SERVICES, queryset_search
from backoffice.selectors import (
    billing_action_for_key,
    stripe_dashboard_url,
    subscription_billing_overview,
)
from backoffice.subscription_actions import (
    SPECS,
    action_applies,
    action_perform,
    actions_offered,
    consequences,
    form_class,
    new_idempotency_key,
)
from billing.models import BillingAction, BillingActionStatus, SubscriptionInvoice
from billing.selectors import invoice_refundable_amount
from catalog.models import BillingCycle
from core.exceptions import ApplicationError
from core.money import money_format

# The customer and subscription lists search as the box at the top of every page does (backoffice/search.py).
SEARCH_HELP_SHARED = (
    "A name (or a surname), an e-mail address (or @domain), a domain (www. and case do not matter), "
    "a control-panel username, or the start of one; a Stripe id (cs_, cus_, sub_, pi_, in_, ch_) "
    "or its start."
)


def _link(request, obj, text=None) -> str:
    if obj is None:
        return "-"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def _email_search(queryset, term: str, *, email: str, stripe: dict[str, str]):
    """The user list's search (staff and customers' people): an exact address (any case) on the Lower(email) index, a
    Stripe id by its prefix, else an address's start. Customers, orders and services: backoffice/search.py."""
    term = term.strip()
    if not term:
        return queryset
    for prefix, lookup in stripe.items():
        if term.startswith(prefix):
            return queryset.filter(**{lookup: term})
    queryset = queryset.alias(_email_lower=Lower(email))
    if "@" in term:
        return queryset.filter(_email_lower=term.lower())
    return queryset.filter(_email_lower__startswith=term.lower())


class MembershipInline(admin.TabularInline):
    model = CustomerMembership
    extra = 0
    fields = ("customer", "user", "role", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("customer", "user")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email",)
    search_help_text = "An e-mail address (exact, any case) or its start."
    paginator = EstimatedCountPaginator  # a million customers' users are never counted whole
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    formfield_overrides = {DateTimeField: {"widget": LabelledSplitDateTime}}
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("full_name", "customers_links", "orders_link")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("customers_links", "orders_link", "password_state")
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    inlines = (MembershipInline,)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        # Read-only staff (support) would see Django's "Set password" button, which leads to a 403: they see
        # whether a password is set instead (and never the hash's summary).
        return tuple(
            (
                name,
                {
                    **options,
                    "fields": tuple("password_state" if field == "password" else field for field in options["fields"]),
                },
            )
            for name, options in fieldsets
        )

    @admin.display(description="Password")
    def password_state(self, user: User) -> str:
        if user.has_usable_password():
            return "Set by the user."
        return "Not set yet: the user has not chosen one (the set-password e-mail can be sent again from the order)."

    def get_search_results(self, request, queryset, search_term):
        return _email_search(
            queryset,
            search_term,
            email="email",
            stripe={
                "cus_": "customers__stripe_customer_id",
                "sub_": "customers__subscriptions__stripe_subscription_id",
            },
        ), search_term.strip().startswith(("cus_", "sub_"))  # only a join can repeat a user: DISTINCT then alone

    @admin.display(description="Customers")
    def customers_links(self, user: User) -> str:
        return format_html_join(", ", "{}", ((_link(None, customer),) for customer in user.customers.all())) or "-"

    @admin.display(description="Orders")
    def orders_link(self, user: User) -> str:
        url = reverse("admin:checkout_checkoutsession_changelist")
        return format_html('<a href="{}?q={}">Checkout sessions of {}</a>', url, user.email, user.email)


@admin.register(Customer)
class CustomerAdmin(CsvExportMixin, admin.ModelAdmin):
    """The customer page (templates/admin/accounts/customer/change_form.html), where support starts: people, services,
    orders, billing, e-mails and staff notes (backoffice.customer_page), and the note form (backoffice.notes)."""

    list_display = ("__str__", "email", "stripe_customer", "created_at")
    list_filter = (CustomerAttentionFilter,)
    search_fields = ("email",)
    search_help_text = SEARCH_HELP_SHARED
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    show_facets = admin.ShowFacets.NEVER
    fields = ("name", "email", "stripe_customer", "created_at", "updated_at")
    readonly_fields = ("stripe_customer", "created_at", "updated_at")
    export_spec = CUSTOMERS_EXPORT  # "Export CSV" on the list (backoffice/export.py)

    def get_inlines(self, request, obj):
        # Who may change the customer may add or change its people here; the others read them on the page itself.
        return (MembershipInline,) if obj is not None and self.has_change_permission(request, obj) else ()

    def get_search_results(self, request, queryset, search_term):
        # Related tables are read through id subqueries, never joined: no duplicate rows.
        return queryset_search(queryset=queryset, kind=CUSTOMERS, term=search_term), False

    @admin.display(description="Stripe customer", ordering="stripe_customer_id")
    def stripe_customer(self, customer: Customer) -> str:
        return stripe_link(customer.stripe_customer_id)

    # --- The customer page and its notes -------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        customer = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if customer is not None and self.has_view_permission(request, customer):
            user = request.user
            extra_context.update(
                page=customer_page(customer=customer),
                may={
                    name: user.has_perm(perm)
                    for name, perm in (
                        ("user", "accounts.view_user"),
                        ("subscription", "accounts.view_subscription"),
                        ("order", "checkout.view_checkoutsession"),
                        ("account", "provisioning.view_hostingaccount"),
                        ("invoice", "billing.view_subscriptioninvoice"),
                        ("refund", "billing.view_refundrecord"),
                        ("billing_action", "billing.view_billingaction"),
                        ("email", "provisioning.view_emailnotification"),
                        ("note", "backoffice.view_staffnote"),
                        ("add_note", "backoffice.add_staffnote"),
                        ("pin_note", "backoffice.change_staffnote"),
                    )
                },
                note_form=StaffNoteForm(),
                title=f"Customer: {customer}",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/notes/add/",
                self.admin_site.admin_view(self.note_add_view),
                name="accounts_customer_note_add",
            ),
            path(
                "<path:object_id>/notes/<int:note_id>/pin/",
                self.admin_site.admin_view(self.note_pin_view),
                name="accounts_customer_note_pin",
            ),
            *super().get_urls(),
        ]

    def _customer_for_note(self, request, object_id, permission: str) -> Customer:
        if not request.user.has_perm(permission):
            raise PermissionDenied
        customer = self.get_object(request, object_id)
        if customer is None or not self.has_view_permission(request, customer):
            raise Http404("No such customer")
        return customer

    def note_add_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        customer = self._customer_for_note(request, object_id, "backoffice.add_staffnote")
        page_url = reverse("admin:accounts_customer_change", args=[customer.pk]) + "#notes"
        form = StaffNoteForm(request.POST)
        if not form.is_valid():
            errors = "; ".join(error for errors in form.errors.values() for error in errors)
            self.message_user(request, f"The note was not added: {errors}", messages.ERROR)
            return HttpResponseRedirect(page_url)
        try:
            note, created = note_create(
                customer=customer,
                author=request.user,
                body=form.cleaned_data["body"],
                pinned=form.cleaned_data["pinned"],
            )
        except ApplicationError as error:
            self.message_user(request, f"The note was not added: {error.message}", messages.ERROR)
            return HttpResponseRedirect(page_url)
        if not created:
            self.message_user(request, "This note was already added a moment ago; it is kept once.", messages.INFO)
            return HttpResponseRedirect(page_url)
        pinned = " and pinned" if note.pinned else ""
        self.log_change(request, customer, f"Staff note #{note.pk} added{pinned}: {Truncator(note.body).chars(80)}")
        self.message_user(request, f"Note added{pinned}.", messages.SUCCESS)
        return HttpResponseRedirect(page_url)

    def note_pin_view(self, request, object_id, note_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        customer = self._customer_for_note(request, object_id, "backoffice.change_staffnote")
        note = StaffNote.objects.filter(pk=note_id, customer=customer).first()
        if note is None:
            raise Http404("No such note on this customer")
        pinned = request.POST.get("pinned") == "1"
        word = "pinned" if pinned else "unpinned"
        if note_pin_set(note=note, pinned=pinned):
            self.log_change(request, customer, f"Staff note #{note.pk} {word}")
            self.message_user(request, f"Note #{note.pk} {word}.", messages.SUCCESS)
        else:
            self.message_user(request, f"Note #{note.pk} was already {word}.", messages.INFO)
        return HttpResponseRedirect(reverse("admin:accounts_customer_change", args=[customer.pk]) + "#notes")


@admin.register(Subscription)
class SubscriptionAdmin(CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Written by fulfilment and Stripe's events; what staff may change goes through a billing action.
    """The subscription page: Stripe's state as mirrored, the next renewal, the hosting account and its history,
    invoices, refunds, billing decisions and jobs, and the billing actions (each on a confirmation page asking for a
    reason). Nothing of Stripe's is edited by hand: every field is read-only."""

    list_display = ("plan", "customer_email", "status", "amount_money", "domain", "current_period_end", "created_at")
    list_filter = (
        "status",
        "cancel_at_period_end",
        fixed_choices_filter("billing_cycle", "billing cycle", BillingCycle.choices),
        "product",
    )
    list_select_related = ("customer", "product")
    search_fields = ("customer__email",)
    search_help_text = SEARCH_HELP_SHARED
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    show_facets = admin.ShowFacets.NEVER
    export_spec = SUBSCRIPTIONS_EXPORT  # "Export CSV" on the list (backoffice/export.py)
    fields = (
        "customer_link",
        "product",
        "price",
        "session_link",
        "status",
        "billing_cycle",
        "amount_money",
        "stripe_subscription",
        "stripe_customer",
        "domain",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "canceled_at",
        "ended_at",
        "stripe_test_clock_id",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        return queryset_search(queryset=queryset, kind=SERVICES, term=search_term), False

    @admin.display(description="Plan", ordering="product__name")
    def plan(self, subscription: Subscription) -> str:
        return f"{subscription.product.name} ({subscription.billing_cycle})"

    @admin.display(description="Customer e-mail", ordering="customer__email")
    def customer_email(self, subscription: Subscription) -> str:
        return subscription.customer.email

    @admin.display(description="Customer")
    def customer_link(self, subscription: Subscription) -> str:
        return _link(None, subscription.customer)

    @admin.display(description="Checkout session")
    def session_link(self, subscription: Subscription) -> str:
        return _link(None, subscription.checkout_session, subscription.checkout_session.stripe_session_id)

    @admin.display(description="Amount")
    def amount_money(self, subscription: Subscription) -> str:
        return money_format(subscription.amount, subscription.currency)

    @admin.display(description="Stripe subscription")
    def stripe_subscription(self, subscription: Subscription) -> str:
        return stripe_link(subscription.stripe_subscription_id)

    @admin.display(description="Stripe customer")
    def stripe_customer(self, subscription: Subscription) -> str:
        return stripe_link(subscription.stripe_customer_id)

    # --- The page: billing overview and the action buttons --------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        subscription = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if subscription is not None and self.has_view_permission(request, subscription):
            overview = subscription_billing_overview(subscription=subscription)
            currency = subscription.currency
            extra_context.update(
                overview=overview,
                plan_money=money_format(subscription.amount, currency),
                next_renewal_money=money_format(overview.next_renewal_amount, currency),
                invoice_rows=[
                    {
                        "invoice": invoice,
                        "due": money_format(invoice.amount_due, invoice.currency),
                        "paid": money_format(invoice.amount_paid, invoice.currency),
                        "remaining": money_format(invoice.amount_remaining, invoice.currency),
                        "refundable": money_format(invoice.refundable, invoice.currency),
                        "stripe_url": stripe_dashboard_url(invoice.stripe_invoice_id),
                    }
                    for invoice in overview.invoices
                ],
                refund_rows=[
                    {
                        "refund": refund,
                        "amount": money_format(refund.amount, refund.currency),
                        "stripe_url": stripe_dashboard_url(refund.stripe_payment_intent_id or refund.stripe_charge_id),
                    }
                    for refund in overview.refunds
                ],
                action_rows=[
                    {
                        "action": action,
                        "amount": money_format(action.amount, currency) if action.amount is not None else "",
                    }
                    for action in overview.actions
                ],
                buttons=actions_offered(request.user, overview),
                may_refund=request.user.has_perm(SPECS["refund"].permission),
                may_see_jobs=request.user.has_perm("provisioning.view_provisioningjob"),
                pinned_notes=customer_pinned_notes(customer=subscription.customer)
                if request.user.has_perm("backoffice.view_staffnote")
                else [],
                title=f"Subscription of {subscription.customer.email}",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/billing/<str:action>/",
                self.admin_site.admin_view(self.billing_action_view),
                name="accounts_subscription_billing_action",
            ),
            *super().get_urls(),
        ]

    def billing_action_view(self, request, object_id, action):
        """GET: the confirmation page (what will happen, a reason, a fresh idempotency key). POST: run it once."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        spec = SPECS.get(action)
        if spec is None:
            raise Http404("No such action")
        if not request.user.has_perm(spec.permission):
            raise PermissionDenied
        subscription = self.get_object(request, object_id)
        if subscription is None or not self.has_view_permission(request, subscription):
            raise Http404("No such subscription")
        page_url = reverse("admin:accounts_subscription_change", args=[subscription.pk])
        invoice = None
        if action == "refund":
            invoice_id = request.POST.get("invoice") or request.GET.get("invoice")
            invoice = (
                SubscriptionInvoice.objects.filter(subscription=subscription, pk=invoice_id).first()
                if (str(invoice_id or "").isdigit())
                else None
            )
            if invoice is None:
                raise Http404("No such invoice of this subscription")
        overview = subscription_billing_overview(subscription=subscription)
        form_kwargs = {}
        if invoice is not None:
            form_kwargs = {"refundable": invoice_refundable_amount(invoice=invoice), "currency": invoice.currency}
        FormClass = form_class(action)

        if request.method == "GET":
            if not action_applies(action, overview, invoice):
                self.message_user(request, f"{spec.label}: does not apply to this subscription now.", messages.WARNING)
                return HttpResponseRedirect(page_url)
            form = FormClass(initial={"idempotency_key": new_idempotency_key()}, **form_kwargs)
            return self._billing_action_page(request, subscription, spec, overview, invoice, form)

        form = FormClass(request.POST, **form_kwargs)
        key = request.POST.get("idempotency_key", "")
        earlier = billing_action_for_key(idempotency_key=key) if key else None
        if earlier is not None:
            # The same form sent again (a double click, a reload): say what the first one did, do nothing more.
            if earlier.subscription_id != subscription.pk:
                self.message_user(
                    request,
                    "This form was already used for another subscription; open the action again.",
                    messages.ERROR,
                )
            else:
                self._report(request, earlier, spec, repeat=True)
            return HttpResponseRedirect(page_url)
        if not form.is_valid():
            return self._billing_action_page(request, subscription, spec, overview, invoice, form)
        try:
            result = action_perform(
                action, subscription=subscription, invoice=invoice, data=form.cleaned_data, actor=request.user
            )
        except ApplicationError as error:
            if error.field and error.field in form.fields and error.field != "idempotency_key":
                form.add_error(error.field, error.message)
                return self._billing_action_page(request, subscription, spec, overview, invoice, form)
            self.log_change(
                request, subscription, f"{spec.label}: failed: {error.message} (reason: {form.cleaned_data['reason']})"
            )
            self.message_user(request, f"{spec.label} failed: {error.message}", messages.ERROR)
            return HttpResponseRedirect(page_url)
        self.log_change(
            request,
            subscription,
            f"{spec.label}: {result.get_status_display().lower()}"
            + (f" {money_format(result.amount, subscription.currency)}" if result.amount is not None else "")
            + f" (reason: {result.reason})",
        )
        self._report(request, result, spec, repeat=False)
        return HttpResponseRedirect(page_url)

    def _billing_action_page(self, request, subscription, spec, overview, invoice, form):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": subscription,
            "spec": spec,
            "form": form,
            "invoice": invoice,
            "consequences": consequences(spec.name, overview, invoice),
            "overview": overview,
            "title": f"{spec.label}: {subscription}",
            "page_url": reverse("admin:accounts_subscription_change", args=[subscription.pk]),
        }
        return TemplateResponse(request, "admin/accounts/subscription/billing_action.html", context)

    def _report(self, request, action: BillingAction, spec, *, repeat: bool) -> None:
        prefix = "This form was already sent: " if repeat else ""
        amount = f" {money_format(action.amount, action.subscription.currency)}" if action.amount is not None else ""
        if action.status == BillingActionStatus.FAILED:
            text = f"{prefix}{spec.label}{amount} failed: {action.error}"
            if repeat:
                text += " Open the action again to try once more."
            self.message_user(request, text, messages.ERROR)
        elif action.status == BillingActionStatus.REQUESTED:
            self.message_user(
                request,
                f"{prefix}{spec.label}{amount} is recorded; Stripe has not answered yet"
                + (f" ({action.error})" if action.error else "")
                + ". It is asked again automatically with the same key.",
                messages.WARNING,
            )
        else:
            self.message_user(
                request, f"{prefix}{spec.label}{amount}: done.", messages.INFO if repeat else messages.SUCCESS
            )
