"""Back office for the catalog: staff edit products with their prices, the plan moves customers may make, and coupons.

Amounts are typed and shown as money and stored in cents. An edit applies to the next checkout and never to what was
sold: changing the amount or trial of a price that sessions or subscriptions used switches that row off and puts a
new one on sale (backoffice.services.price_save); the admin log records each change with its before and after.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from backoffice.admin_tools import AuditedChangeMessageMixin, MoneyField
from backoffice.selectors import money_format
from backoffice.services import price_save
from catalog.models import BillingCycle, Coupon, PlanMove, Price, Product

# Stripe: a recurring interval of at most three years; trial_period_days of at most 730.
MAX_BILLING_MONTHS = 36
MAX_TRIAL_DAYS = 730


class PriceForm(forms.ModelForm):
    """A price's product, cycle and currency say what it is: fixed once saved (add a new price instead).

    They are disabled rather than read-only so they stay in the form: Django then checks the "one active price per
    product, cycle and currency" constraint with its friendly message instead of failing on the database index.
    """

    unit_amount = MoneyField(label="Amount", help_text="Per billing period, in the price's currency, e.g. 7.99. "
                             "Changing it on a price already sold puts a new price on sale and keeps the old one.")
    trial_days = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_TRIAL_DAYS,
        help_text=f"Free trial offered when the customer asks for one: 1 to {MAX_TRIAL_DAYS} days; empty: no trial.",
        error_messages={"max_value": f"Stripe allows trials of at most {MAX_TRIAL_DAYS} days.",
                        "min_value": "A trial lasts at least one day; leave it empty for no trial."},
    )

    class Meta:
        model = Price
        fields = ("product", "billing_cycle", "currency", "unit_amount", "active", "trial_days")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in ("product", "billing_cycle", "currency"):
                if name in self.fields:
                    self.fields[name].disabled = True

    def clean_billing_cycle(self):
        cycle = self.cleaned_data["billing_cycle"]
        if cycle in BillingCycle.values and BillingCycle(cycle).terms.months > MAX_BILLING_MONTHS:
            raise ValidationError("Stripe bills at most every three years.")
        return cycle

    def clean_currency(self):
        return (self.cleaned_data.get("currency") or "").lower()


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
                raise ValidationError(f"Only one {key[0]} price in {key[1].upper()} can be active; "
                                      "deactivate the others.")
            active_keys.add(key)
        if self.instance.pk:
            # An active price saved meanwhile by someone else is not among these forms, but the index counts it.
            shown = [form.instance.pk for form in self.forms if form.instance.pk]
            others = Price.objects.filter(product=self.instance, active=True).exclude(pk__in=shown)
            for price in others:
                if (price.billing_cycle, price.currency) in active_keys:
                    raise ValidationError(f"Another active {price.billing_cycle} price in {price.currency.upper()} "
                                          "was saved meanwhile; reload the page.")


class PriceInline(admin.TabularInline):
    model = Price
    form = PriceForm
    formset = PriceInlineFormSet
    fields = ("billing_cycle", "currency", "unit_amount", "amount", "active", "trial_days")
    readonly_fields = ("amount",)
    extra = 0
    # Prices that sessions or subscriptions refer to are protected; switch a price off instead.
    can_delete = False

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


def _notify_replacements(admin_instance, request, replaced: list[tuple[Price, Price]]) -> None:
    for new, old in replaced:
        note = (f"price #{old.pk} ({old.billing_cycle} {old.currency.upper()}) was used by orders: switched off and "
                f"kept; new price #{new.pk} on sale at {money_format(new.unit_amount, new.currency)}")
        request._audit_notes = [*getattr(request, "_audit_notes", []), note]
        admin_instance.message_user(request, note[0].upper() + note[1:] + ".", messages.INFO)


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
        return ", ".join(f"{price.billing_cycle} {money_format(price.unit_amount, price.currency)}"
                         for price in product.prices.all() if price.active) or "-"

    def get_readonly_fields(self, request, obj=None):
        # The marketing site sends the code as planId: renaming a product would break its links.
        return ("code",) if obj else ()

    def save_formset(self, request, form, formset, change):
        if formset.model is not Price:
            return super().save_formset(request, form, formset, change)
        prices = formset.save(commit=False)
        for price in formset.deleted_objects:
            price.delete()
        changed = {id(f.instance): f.changed_data for f in formset.forms}
        replaced = []
        # Prices being switched off are saved first: the unique index never sees two active prices at once.
        for price in sorted(prices, key=lambda price: price.active):
            new, old = price_save(price=price, changed_fields=changed.get(id(price), []))
            if old is not None:
                replaced.append((new, old))
        formset.save_m2m()
        _notify_replacements(self, request, replaced)


@admin.register(Price)
class PriceAdmin(AuditedChangeMessageMixin, admin.ModelAdmin):
    form = PriceForm
    list_display = ("product", "billing_cycle", "currency", "amount", "active", "trial_days", "updated_at")
    list_filter = ("active", "billing_cycle", "currency", "product__type")
    list_select_related = ("product",)
    search_fields = ("product__code", "product__name")

    def save_model(self, request, obj, form, change):
        new, old = price_save(price=obj, changed_fields=form.changed_data if change else [])
        if old is not None:
            _notify_replacements(self, request, [(new, old)])
            # The log entry and the redirect are about the row staff edited: it now shows it switched off.
            obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    @admin.display(description="Amount", ordering="unit_amount")
    def amount(self, price: Price) -> str:
        return money_format(price.unit_amount, price.currency)


class CouponForm(forms.ModelForm):
    amount_off = MoneyField(required=False, label="Amount off",
                            help_text="In the coupon's currency, e.g. 5.00; or give a percentage instead.")
    billing_cycles = forms.MultipleChoiceField(
        choices=BillingCycle.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: valid for every billing cycle.",
    )

    class Meta:
        model = Coupon
        fields = "__all__"

    def clean(self):
        cleaned_data = super().clean()
        valid_from, valid_until = cleaned_data.get("valid_from"), cleaned_data.get("valid_until")
        if valid_from and valid_until and valid_from >= valid_until:
            self.add_error("valid_until", "Must be later than valid from.")
        percent_off, amount_off = cleaned_data.get("percent_off"), cleaned_data.get("amount_off")
        if percent_off is None and amount_off is None and "percent_off" not in self.errors:
            self.add_error("percent_off", "Give a percentage or an amount off.")
        elif percent_off is not None and amount_off is not None:
            self.add_error("amount_off", "Give either a percentage or an amount off, not both.")
        if cleaned_data.get("duration") == "repeating" and not cleaned_data.get("duration_in_months"):
            self.add_error("duration_in_months", "A repeating coupon needs its number of months.")
        limit = cleaned_data.get("max_redemptions")
        if limit is not None and self.instance.pk and limit < self.instance.times_redeemed:
            self.add_error("max_redemptions", f"Already redeemed {self.instance.times_redeemed} times.")
        return cleaned_data


@admin.register(Coupon)
class CouponAdmin(AuditedChangeMessageMixin, admin.ModelAdmin):
    form = CouponForm
    list_display = ("code", "discount", "duration", "valid_from", "valid_until", "redemptions", "active")
    list_filter = ("active", "duration")
    search_fields = ("code", "name")
    filter_horizontal = ("products",)
    # Counted by the checkout when a coupon is redeemed.
    readonly_fields = ("times_redeemed",)

    def has_delete_permission(self, request, obj=None):
        # Sessions keep the coupon's code; switch a coupon off (active) rather than delete it.
        return request.user.is_superuser and super().has_delete_permission(request, obj)

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
        limit = coupon.max_redemptions if coupon.max_redemptions is not None else "no limit"
        return f"{coupon.times_redeemed} of {limit}"


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
