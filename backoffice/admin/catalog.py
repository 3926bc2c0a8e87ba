"""Back office for the catalog: staff edit products with their prices, the plan moves customers may make, and coupons.

Amounts are typed and shown as money and stored in cents. An edit applies to the next checkout and never to what was
sold: changing the amount or trial of a price that sessions or subscriptions used switches that row off and puts a
new one on sale (catalog.services.price_save); the admin log records each change with its before and after.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.core.exceptions import ValidationError
from django.db.models import Case, DateTimeField, IntegerField, Value, When
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from backoffice.admin_tools import AuditedChangeMessageMixin, LabelledSplitDateTime, MoneyField
from catalog.models import CYCLE_TERMS, BillingCycle, Coupon, PlanMove, Price, Product
from catalog.services import PRICE_SOLD_TERMS, price_change_is_large, price_is_used, price_save
from core.money import money_format

# Stripe: a recurring interval of at most three years; trial_period_days of at most 730.
MAX_BILLING_MONTHS = 36
MAX_TRIAL_DAYS = 730


def cycle_months_order():
    """Billing cycles in the order of their length (monthly, yearly, biennial, triennial), not alphabetically."""
    return Case(
        *[When(billing_cycle=cycle.value, then=Value(terms.months)) for cycle, terms in CYCLE_TERMS.items()],
        default=Value(0),
        output_field=IntegerField(),
    )


CONFIRM_LABEL = "Yes, this change of more than 50 % is meant"


class PriceForm(forms.ModelForm):
    """A price's product, cycle and currency say what it is: fixed once saved (add a new price instead).

    They are disabled rather than read-only so they stay in the form: Django then checks the "one active price per
    product, cycle and currency" constraint with its friendly message instead of failing on the database index.

    A change of the amount by more than half, either way, is saved only with `confirm_large_change` ticked: a typed
    "1,000" for 10.00 goes on sale at once. The box is hidden until the form asks for it. A retired price that orders
    used keeps its terms (they are what was sold): its amount and trial are shown but cannot be edited.
    """

    unit_amount = MoneyField(
        label="Amount",
        help_text="Per billing period, in the price's currency, e.g. 7.99. "
        "Changing it on a price already sold puts a new price on sale and keeps the old one.",
    )
    trial_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TRIAL_DAYS,
        help_text=f"Free trial offered when the customer asks for one: 1 to {MAX_TRIAL_DAYS} days; empty: no trial.",
        error_messages={
            "max_value": f"Stripe allows trials of at most {MAX_TRIAL_DAYS} days.",
            "min_value": "A trial lasts at least one day; leave it empty for no trial.",
        },
    )
    confirm_large_change = forms.BooleanField(required=False, label=CONFIRM_LABEL, widget=forms.HiddenInput)

    class Meta:
        model = Price
        fields = ("product", "billing_cycle", "currency", "unit_amount", "active", "trial_days")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in ("product", "billing_cycle", "currency"):
                if name in self.fields:
                    self.fields[name].disabled = True
            if not self.instance.active and price_is_used(price=self.instance):
                on_sale = Price.objects.filter(
                    product_id=self.instance.product_id,
                    active=True,
                    billing_cycle=self.instance.billing_cycle,
                    currency=self.instance.currency,
                ).first()
                where = (
                    format_html(
                        ' Edit <a href="{}">price #{} on sale</a> instead.',
                        reverse("admin:catalog_price_change", args=[on_sale.pk]),
                        on_sale.pk,
                    )
                    if on_sale
                    else " Add a new price to sell this cycle again."
                )
                for name in PRICE_SOLD_TERMS:
                    if name in self.fields:
                        self.fields[name].disabled = True
                        self.fields[name].help_text = format_html(
                            "Retired: orders used this price, so its amount and trial stay as sold.{}", where
                        )

    def clean_billing_cycle(self):
        cycle = self.cleaned_data["billing_cycle"]
        if cycle in BillingCycle.values and BillingCycle(cycle).terms.months > MAX_BILLING_MONTHS:
            raise ValidationError("Stripe bills at most every three years.")
        return cycle

    def clean_currency(self):
        return (self.cleaned_data.get("currency") or "").lower()

    def clean(self):
        cleaned_data = super().clean()
        if (
            self.instance.pk
            and set(self.changed_data) & set(PRICE_SOLD_TERMS)
            and not cleaned_data.get("active")
            and price_is_used(price=self.instance)
        ):
            # New terms nobody could buy: price_save refuses it too, this says it in the form.
            self.add_error(
                "active",
                "Orders used this price, so new terms go on sale as a new price: keep Active "
                "ticked to sell them, or untick Active without changing the terms to retire it.",
            )
        before, after = self.initial.get("unit_amount"), cleaned_data.get("unit_amount")
        if (
            self.instance.pk
            and "unit_amount" in self.changed_data
            and isinstance(before, int)
            and after
            and price_change_is_large(before=before, after=after)
            and not cleaned_data.get("confirm_large_change")
        ):
            currency = self.instance.currency
            percent = round((after - before) * 100 / before)
            self.add_error(
                "unit_amount",
                f"{money_format(before, currency)} → {money_format(after, currency)} is a "
                f"change of {percent:+d} %. If that is right, tick “{CONFIRM_LABEL}” and "
                "save again.",
            )
            self.fields["confirm_large_change"].widget = forms.CheckboxInput()
        return cleaned_data


class PriceInlineForm(PriceForm):
    """On the product page the confirmation is a column of its own, so the table keeps its shape."""

    confirm_large_change = forms.BooleanField(
        required=False, label="Confirm a change over 50 %", widget=forms.CheckboxInput
    )


class PriceInlineFormSet(forms.BaseInlineFormSet):
    """Checks "one active price per cycle and currency" across the whole submission.

    Django skips that constraint in inline forms (the product is excluded from their validation), so two active
    monthly prices added together would otherwise reach the unique index and fail with a server error. Checking the
    submission as a whole also lets staff switch one price off and another on in a single save.
    """

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        active_keys = set()
        for form in self.forms:
            if not form.cleaned_data or self._should_delete_form(form) or not form.cleaned_data.get("active"):
                continue
            key = (form.cleaned_data["billing_cycle"], form.cleaned_data["currency"])
            if key in active_keys:
                raise ValidationError(
                    f"Only one {key[0]} price in {key[1].upper()} can be active; deactivate the others."
                )
            active_keys.add(key)
        if self.instance.pk:
            # An active price saved meanwhile by someone else is not among these forms, but the index counts it.
            shown = [form.instance.pk for form in self.forms if form.instance.pk]
            others = Price.objects.filter(product=self.instance, active=True).exclude(pk__in=shown)
            for price in others:
                if (price.billing_cycle, price.currency) in active_keys:
                    raise ValidationError(
                        f"Another active {price.billing_cycle} price in {price.currency.upper()} "
                        "was saved meanwhile; reload the page."
                    )


class PriceInline(admin.TabularInline):
    """The prices on sale, editable; retired ones are listed apart (RetiredPriceInline), read-only."""

    model = Price
    form = PriceInlineForm
    formset = PriceInlineFormSet
    fields = ("billing_cycle", "currency", "unit_amount", "amount", "active", "trial_days", "confirm_large_change")
    readonly_fields = ("amount",)
    extra = 0
    verbose_name_plural = "Prices on sale"
    # Prices that sessions or subscriptions refer to are protected; switch a price off instead.
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(active=True).order_by(cycle_months_order(), "currency")

    @admin.display(description="Amount")
    def amount(self, price: Price) -> str:
        return money_format(price.unit_amount, price.currency) if price.unit_amount else "-"


class ProductCycleFilter(admin.SimpleListFilter):
    title = "billing cycle on sale"
    parameter_name = "cycle"

    def lookups(self, request, model_admin):
        return BillingCycle.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(prices__billing_cycle=self.value(), prices__active=True).distinct()
        return queryset


def _report_price_saves(admin_instance, request, outcomes) -> None:
    """One banner line per price saved, read from the rows as saved; the same line goes into the admin log."""
    for outcome in outcomes:
        if outcome.retired is not None:
            request._audit_notes = [*getattr(request, "_audit_notes", []), outcome.message]
        admin_instance.message_user(
            request, outcome.message, messages.SUCCESS if outcome.saved.active else messages.WARNING
        )


@admin.register(Product)
class ProductAdmin(AuditedChangeMessageMixin, admin.ModelAdmin):
    list_display = ("code", "name", "type", "active", "sort_order", "prices_on_sale")
    list_filter = ("type", "active", ProductCycleFilter)
    search_fields = ("code", "name")
    inlines = (PriceInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("prices")

    def has_delete_permission(self, request, obj=None):
        # Products that were sold are protected; catalog staff switch a product off (active) instead.
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    @admin.display(description="Prices on sale")
    def prices_on_sale(self, product: Product) -> str:
        return (
            ", ".join(
                f"{price.billing_cycle} {money_format(price.unit_amount, price.currency)}"
                for price in product.prices.all()
                if price.active
            )
            or "-"
        )

    def get_readonly_fields(self, request, obj=None):
        # The marketing site sends the code as planId: renaming a product would break its links.
        return ("code", "retired_prices") if obj else ()

    @admin.display(description="Retired prices")
    def retired_prices(self, product: Product) -> str:
        """Prices no longer on sale, kept for what was sold: listed, not editable here (each opens its own page,
        where one can be put back on sale)."""
        retired = product.prices.filter(active=False).order_by(cycle_months_order(), "currency", "-pk")
        items = format_html_join(
            "",
            '<li><a href="{}">#{}</a> {} {} (retired {})</li>',
            (
                (
                    reverse("admin:catalog_price_change", args=[price.pk]),
                    price.pk,
                    price.get_billing_cycle_display(),
                    money_format(price.unit_amount, price.currency),
                    date_format(price.updated_at, "DATETIME_FORMAT"),
                )
                for price in retired[:50]
            ),
        )
        return format_html('<ul class="retired-prices">{}</ul>', items) if items else "None"

    def save_formset(self, request, form, formset, change):
        if formset.model is not Price:
            return super().save_formset(request, form, formset, change)
        prices = formset.save(commit=False)
        for price in formset.deleted_objects:
            price.delete()
        changed = {id(f.instance): f.changed_data for f in formset.forms}
        outcomes = []
        # Prices being switched off are saved first: the unique index never sees two active prices at once.
        for price in sorted(prices, key=lambda price: price.active):
            outcomes.append(price_save(price=price, changed_fields=changed.get(id(price), [])))
        formset.save_m2m()
        for outcome in outcomes:  # what is on sale once every row is saved
            outcome.on_sale = Price.objects.filter(
                product_id=outcome.saved.product_id,
                billing_cycle=outcome.saved.billing_cycle,
                currency=outcome.saved.currency,
                active=True,
            ).first()
        _report_price_saves(self, request, outcomes)


class PriceOnSaleFilter(admin.SimpleListFilter):
    """On sale by default: the list is what customers can buy now; retired prices are one click away."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("retired", "Retired (not on sale)"), ("all", "All")]

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "display": "On sale",
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "display": title,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
            }

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        return queryset.filter(active=self.value() != "retired")


@admin.register(Price)
class PriceAdmin(AuditedChangeMessageMixin, admin.ModelAdmin):
    form = PriceForm
    list_display = ("product_name", "billing_cycle", "currency", "amount", "active", "trial_days", "updated_at")
    list_filter = (PriceOnSaleFilter, "billing_cycle", "currency", "product__type")
    list_select_related = ("product",)
    search_fields = ("product__code", "product__name")

    def get_ordering(self, request):
        # By product, then cycle by length: monthly before yearly before biennial (alphabetically it is not).
        return ("product__sort_order", "product__code", cycle_months_order().asc(), "currency", "-active", "-pk")

    def get_fields(self, request, obj=None):
        fields = [name for name in super().get_fields(request, obj) if name != "confirm_large_change"]
        # The box exists only on a saved price (a change); hidden until the form asks for it.
        return [*fields, "confirm_large_change"] if obj is not None else fields

    def save_model(self, request, obj, form, change):
        outcome = price_save(price=obj, changed_fields=form.changed_data if change else [])
        request._price_outcome = outcome
        if outcome.retired is not None:
            request._audit_notes = [*getattr(request, "_audit_notes", []), outcome.message]
            # The log entry is about the row staff edited: it now shows it switched off.
            obj.refresh_from_db()

    def response_change(self, request, obj):
        """The banner is the save's own account of it, and "Save and continue editing" opens the row that carries
        the new terms (the one on sale), never the retired row that was edited."""
        outcome = getattr(request, "_price_outcome", None)
        if outcome is None:
            return super().response_change(request, obj)
        _report_price_saves(self, request, [outcome])
        if "_continue" in request.POST:
            url = reverse("admin:catalog_price_change", args=[outcome.saved.pk])
        elif "_addanother" in request.POST:
            url = reverse("admin:catalog_price_add")
        else:
            return self.response_post_save_change(request, obj)
        return HttpResponseRedirect(
            add_preserved_filters({"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}, url)
        )

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    @admin.display(description="Product", ordering="product__name")
    def product_name(self, price: Price) -> str:
        return price.product.name

    @admin.display(description="Amount", ordering="unit_amount")
    def amount(self, price: Price) -> str:
        return money_format(price.unit_amount, price.currency)


class CouponForm(forms.ModelForm):
    amount_off = MoneyField(
        required=False,
        label="Amount off",
        help_text="In the coupon's currency, e.g. 5.00; or give a percentage instead.",
    )
    billing_cycles = forms.MultipleChoiceField(
        choices=BillingCycle.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: valid for every billing cycle.",
    )

    class Meta:
        model = Coupon
        # Ticks rather than the admin's two-list selector: a catalog holds tens of plans, the ticks read on a phone,
        # and the selector's help icon carries an aria-label that its role does not allow (axe-core).
        widgets = {"products": forms.CheckboxSelectMultiple}
        help_texts = {"products": "None ticked: valid for every plan."}
        fields = "__all__"  # noqa: DJ007 (every field of a coupon is staff's to set; the form adds its own checks)

    def clean(self):
        # The coupon's own rules (percentage or amount, months, valid window) are its model's constraints, which the
        # ModelForm validates after this; this adds the one that depends on how the coupon has been used.
        cleaned_data = super().clean()
        limit = cleaned_data.get("max_redemptions")
        if limit is not None and self.instance.pk and limit < self.instance.times_redeemed:
            self.add_error("max_redemptions", f"Already redeemed {self.instance.times_redeemed} times.")
        return cleaned_data


@admin.register(Coupon)
class CouponAdmin(AuditedChangeMessageMixin, admin.ModelAdmin):
    form = CouponForm
    list_display = ("code", "discount", "duration_text", "validity", "redemptions", "applies_to", "active")
    list_filter = ("active", "duration")
    search_fields = ("code", "name")
    formfield_overrides = {DateTimeField: {"widget": LabelledSplitDateTime}}
    # Counted by the checkout when a coupon is redeemed.
    readonly_fields = ("times_redeemed",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("products")

    def has_delete_permission(self, request, obj=None):
        # Sessions keep the coupon's code; switch a coupon off (active) rather than delete it.
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    @admin.display(description="Duration", ordering="duration")
    def duration_text(self, coupon: Coupon) -> str:
        if coupon.duration == "repeating":
            return f"Repeating: {coupon.duration_in_months} months"
        return coupon.get_duration_display()

    @admin.display(description="Valid", ordering="valid_until")
    def validity(self, coupon: Coupon) -> str:
        start = date_format(coupon.valid_from, "DATETIME_FORMAT") if coupon.valid_from else None
        end = date_format(coupon.valid_until, "DATETIME_FORMAT") if coupon.valid_until else None
        if start and end:
            return f"{start} – {end}"
        if start or end:
            return f"from {start}" if start else f"until {end}"
        return "always"

    @admin.display(description="Applies to")
    def applies_to(self, coupon: Coupon) -> str:
        plans = ", ".join(product.name for product in coupon.products.all()) or "every plan"
        labels = dict(BillingCycle.choices)
        cycles = ", ".join(labels.get(cycle, cycle).lower() for cycle in coupon.billing_cycles) or "every cycle"
        return f"{plans}; {cycles}"

    @admin.display(description="Discount")
    def discount(self, coupon: Coupon) -> str:
        if coupon.percent_off is None:
            return money_format(coupon.amount_off, coupon.currency)
        text = f"{coupon.percent_off:f}"
        if "." in text:  # 10.00 -> 10, 12.50 -> 12.5
            text = text.rstrip("0").rstrip(".")
        return f"{text} %"

    @admin.display(description="Redemptions")
    def redemptions(self, coupon: Coupon) -> str:
        if coupon.max_redemptions is None:
            return f"{coupon.times_redeemed} used, no limit"
        return f"{coupon.times_redeemed} of {coupon.max_redemptions}"


class PlanMoveForm(forms.ModelForm):
    class Meta:
        model = PlanMove
        fields = ("from_product", "to_product", "active")
        help_texts = {
            "from_product": "A subscription of this plan ...",
            "to_product": "... may move to this plan (any of its cycles on sale in the subscription's currency). "
            "Another cycle of the same plan needs no move; both plans must be of the same type.",
        }


@admin.register(PlanMove)
class PlanMoveAdmin(AuditedChangeMessageMixin, admin.ModelAdmin):
    """Which plan changes customers may make in the client area; switching a move off hides it at once (a change
    already made stays)."""

    form = PlanMoveForm
    list_display = ("from_product", "to_product", "product_type", "active", "updated_at")
    list_editable = ("active",)
    list_filter = ("active", "from_product__type")
    list_select_related = ("from_product", "to_product")
    search_fields = ("from_product__code", "to_product__code", "from_product__name", "to_product__name")

    @admin.display(description="Type", ordering="from_product__type")
    def product_type(self, move: PlanMove) -> str:
        return move.from_product.get_type_display()
