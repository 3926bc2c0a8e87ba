"""Back office for the catalog: staff edit products with their prices, and coupons. A fuller back office comes later."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from catalog.models import BillingCycle, Coupon, Price, Product

_CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def money_format(amount: int, currency: str) -> str:
    """Cents as a person reads them, with integer arithmetic only: (799, "usd") -> "$7.99"."""
    number = f"{amount // 100:,}.{amount % 100:02d}"
    symbol = _CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"


class PriceForm(forms.ModelForm):
    """A price's product, cycle and currency say what it is: fixed once saved (add a new price instead).

    They are disabled rather than read-only so they stay in the form: Django then checks the "one active price per
    product, cycle and currency" constraint with its friendly message instead of failing on the database index.
    """

    class Meta:
        model = Price
        fields = ("product", "billing_cycle", "currency", "unit_amount", "active", "trial_days")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in ("product", "billing_cycle", "currency"):
                if name in self.fields:
                    self.fields[name].disabled = True


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

    @admin.display(description="Amount")
    def amount(self, price: Price) -> str:
        return money_format(price.unit_amount, price.currency) if price.unit_amount else "-"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "type", "active", "sort_order")
    list_filter = ("type", "active")
    search_fields = ("code", "name")
    inlines = (PriceInline,)

    def get_readonly_fields(self, request, obj=None):
        # The marketing site sends the code as planId: renaming a product would break its links.
        return ("code",) if obj else ()

    def save_formset(self, request, form, formset, change):
        prices = formset.save(commit=False)
        for price in formset.deleted_objects:
            price.delete()
        # Prices being switched off are saved first: the unique index never sees two active prices at once.
        for price in sorted(prices, key=lambda price: price.active):
            price.save()
        formset.save_m2m()


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    form = PriceForm
    list_display = ("product", "billing_cycle", "currency", "amount", "active", "trial_days")
    list_filter = ("active", "billing_cycle", "currency", "product__type")
    list_select_related = ("product",)
    search_fields = ("product__code", "product__name")

    @admin.display(description="Amount", ordering="unit_amount")
    def amount(self, price: Price) -> str:
        return money_format(price.unit_amount, price.currency)


class CouponForm(forms.ModelForm):
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
        return cleaned_data


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    form = CouponForm
    list_display = ("code", "discount", "duration", "valid_from", "valid_until", "redemptions", "active")
    list_filter = ("active", "duration")
    search_fields = ("code", "name")
    filter_horizontal = ("products",)
    # Counted by the checkout when a coupon is redeemed.
    readonly_fields = ("times_redeemed",)

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
