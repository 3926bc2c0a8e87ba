"""Staff's view of people and billing accounts: users, customers and subscriptions, linked to each other and to the
checkout sessions that made them; searchable by e-mail address and Stripe ids, each on an index."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.models import Customer, CustomerMembership, Subscription, User
from backoffice.selectors import money_format, stripe_dashboard_url

SEARCH_HELP = "An e-mail address (exact), the start of one, or a Stripe id (cus_... customer, sub_... subscription)."


def _link(request, obj, text=None) -> str:
    if obj is None:
        return "-"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def _stripe_link(stripe_id: str | None) -> str:
    url = stripe_dashboard_url(stripe_id)
    return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, stripe_id) if url else (
        stripe_id or "-")


def _email_search(queryset, term: str, *, email: str, stripe: dict[str, str]):
    """An exact address (any case) on the Lower(email) index, a Stripe id by its prefix, else an address's start."""
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
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("full_name", "customers_links", "orders_link")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("customers_links", "orders_link")
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    inlines = (MembershipInline,)

    def get_search_results(self, request, queryset, search_term):
        return _email_search(queryset, search_term, email="email", stripe={
            "cus_": "customers__stripe_customer_id", "sub_": "customers__subscriptions__stripe_subscription_id",
        }), True

    @admin.display(description="Customers")
    def customers_links(self, user: User) -> str:
        return format_html_join(", ", "{}", ((_link(None, customer),) for customer in user.customers.all())) or "-"

    @admin.display(description="Orders")
    def orders_link(self, user: User) -> str:
        url = reverse("admin:checkout_checkoutsession_changelist")
        return format_html('<a href="{}?q={}">Checkout sessions of {}</a>', url, user.email, user.email)


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    can_delete = False
    fields = ("link", "status", "billing_cycle", "amount_money", "domain", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Subscription")
    def link(self, subscription: Subscription) -> str:
        return _link(None, subscription)

    @admin.display(description="Amount")
    def amount_money(self, subscription: Subscription) -> str:
        return money_format(subscription.amount, subscription.currency)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "email", "stripe_customer", "created_at")
    search_fields = ("email",)
    search_help_text = SEARCH_HELP
    show_full_result_count = False
    fields = ("name", "email", "stripe_customer", "created_at", "updated_at")
    readonly_fields = ("stripe_customer", "created_at", "updated_at")
    inlines = (MembershipInline, SubscriptionInline)

    def get_search_results(self, request, queryset, search_term):
        return _email_search(queryset, search_term, email="email", stripe={
            "cus_": "stripe_customer_id", "sub_": "subscriptions__stripe_subscription_id",
        }), True

    @admin.display(description="Stripe customer", ordering="stripe_customer_id")
    def stripe_customer(self, customer: Customer) -> str:
        return _stripe_link(customer.stripe_customer_id)


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "customer_email", "status", "amount_money", "domain", "created_at")
    list_filter = ("status", "billing_cycle", "product")
    list_select_related = ("customer", "product")
    search_fields = ("customer__email",)
    search_help_text = SEARCH_HELP + " Or a domain (exact)."
    show_full_result_count = False
    fields = ("customer_link", "product", "price", "session_link", "status", "billing_cycle", "amount_money",
              "stripe_subscription", "stripe_customer", "domain", "current_period_start", "current_period_end",
              "created_at", "updated_at", "jobs")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Written by fulfilment and Stripe's events; what staff may change goes through a support action.
        return False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term and "@" not in term and "." in term and " " not in term:
            return queryset.filter(domain__iexact=term), True
        return _email_search(queryset, term, email="customer__email", stripe={
            "cus_": "stripe_customer_id", "sub_": "stripe_subscription_id",
            "cs_": "checkout_session__stripe_session_id",
        }), True

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
        return _stripe_link(subscription.stripe_subscription_id)

    @admin.display(description="Stripe customer")
    def stripe_customer(self, subscription: Subscription) -> str:
        return _stripe_link(subscription.stripe_customer_id)

    @admin.display(description="Provisioning jobs")
    def jobs(self, subscription: Subscription) -> str:
        return format_html_join(", ", "{}", ((_link(None, job),) for job in subscription.provisioning_jobs.all())
                                ) or "-"
