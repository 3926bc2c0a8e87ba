"""What we sell: products, their prices per billing cycle, and coupons. Money is integer minor units (cents)."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from core.models import TimeStampedModel


@dataclass(frozen=True)
class CycleTerms:
    interval: str  # Stripe's recurring.interval
    interval_count: int  # Stripe's recurring.interval_count
    months: int  # months one billing period covers


class BillingCycle(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    YEARLY = "yearly", "Yearly"
    BIENNIAL = "biennial", "Biennial (2 years)"
    TRIENNIAL = "triennial", "Triennial (3 years)"

    @property
    def terms(self) -> CycleTerms:
        return CYCLE_TERMS[self]


CYCLE_TERMS = {
    BillingCycle.MONTHLY: CycleTerms("month", 1, 1),
    BillingCycle.YEARLY: CycleTerms("year", 1, 12),
    BillingCycle.BIENNIAL: CycleTerms("year", 2, 24),
    BillingCycle.TRIENNIAL: CycleTerms("year", 3, 36),
}

# The marketing site's names for cycles, accepted by the public API.
BILLING_CYCLE_ALIASES = {
    "annually": BillingCycle.YEARLY,
    "annual": BillingCycle.YEARLY,
    "biennially": BillingCycle.BIENNIAL,
    "triennially": BillingCycle.TRIENNIAL,
}


class ProductType(models.TextChoices):
    HOSTING = "hosting", "Web hosting"
    WORDPRESS = "wordpress", "WordPress hosting"
    EMAIL = "email", "E-mail hosting"
    VPS = "vps", "VPS"
    CLOUD = "cloud", "Cloud"
    STORAGE = "storage", "Storage"


code_validator = RegexValidator(r"^[a-z0-9][a-z0-9-]*$", "Lower-case letters, digits and hyphens only.")
currency_validator = RegexValidator(r"^[a-z]{3}$", "A three-letter ISO currency code in lower case, e.g. usd.")


class Product(TimeStampedModel):
    code = models.CharField(
        max_length=100,
        unique=True,
        validators=[code_validator],
        help_text="Stable identifier the marketing site sends as planId, e.g. starter.",
    )
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=ProductType.choices, db_index=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True, db_index=True)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("sort_order", "code")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Price(TimeStampedModel):
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="prices")
    billing_cycle = models.CharField(max_length=20, choices=BillingCycle.choices)
    currency = models.CharField(max_length=3, default="usd", validators=[currency_validator])
    unit_amount = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Charged once per billing period, in cents."
    )
    active = models.BooleanField(default=True)
    trial_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(730)],
        help_text="Free trial offered when the customer asks for one; empty: no trial.",
    )

    class Meta:
        ordering = ("product__sort_order", "product__code", "billing_cycle")
        constraints = [
            models.UniqueConstraint(
                fields=("product", "billing_cycle", "currency"),
                condition=Q(active=True),
                name="catalog_price_one_active_per_product_cycle_currency",
                violation_error_message="This product already has an active price for this cycle and currency.",
            ),
            models.CheckConstraint(condition=Q(unit_amount__gt=0), name="catalog_price_unit_amount_positive"),
            models.CheckConstraint(
                condition=Q(billing_cycle__in=BillingCycle.values), name="catalog_price_billing_cycle_known"
            ),
        ]
        indexes = [models.Index(fields=("product", "billing_cycle", "currency", "active"))]

    def __str__(self) -> str:
        return f"{self.product.code} {self.billing_cycle} {self.unit_amount / 100:.2f} {self.currency.upper()}"

    @property
    def cycle_terms(self) -> CycleTerms:
        return CYCLE_TERMS[BillingCycle(self.billing_cycle)]


class CouponDuration(models.TextChoices):
    ONCE = "once", "Once"
    FOREVER = "forever", "Forever"
    REPEATING = "repeating", "Repeating"


class Coupon(TimeStampedModel):
    """A discount the customer types at checkout. Its rules across fields (a percentage or an amount, a repeating
    coupon's months, a valid window) are the constraints below, and only there: the database enforces them, and the
    admin's form and the catalog file report them through Django's constraint validation, with the messages below."""

    code = models.CharField(max_length=50, help_text="What the customer types; matched without regard to case.")
    name = models.CharField(max_length=200, blank=True)
    percent_off = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01), MaxValueValidator(100)],
    )
    # Stripe refuses amount_off=0, so a zero coupon would only fail later, at a customer's checkout.
    amount_off = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="In cents of `currency`."
    )
    currency = models.CharField(max_length=3, default="usd", validators=[currency_validator])
    duration = models.CharField(max_length=10, choices=CouponDuration.choices, default=CouponDuration.ONCE)
    duration_in_months = models.PositiveSmallIntegerField(null=True, blank=True)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    max_redemptions = models.PositiveIntegerField(null=True, blank=True)
    times_redeemed = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)
    products = models.ManyToManyField(
        Product, blank=True, related_name="coupons", help_text="Empty: valid for every product."
    )
    billing_cycles = models.JSONField(default=list, blank=True, help_text="Empty: valid for every billing cycle.")

    class Meta:
        ordering = ("code",)
        constraints = [
            models.UniqueConstraint(
                Lower("code"),
                name="catalog_coupon_code_ci_unique",
                violation_error_message="A coupon with this code already exists.",
            ),
            models.CheckConstraint(
                condition=(
                    Q(percent_off__isnull=False, amount_off__isnull=True)
                    | Q(percent_off__isnull=True, amount_off__isnull=False)
                ),
                name="catalog_coupon_percent_xor_amount",
                violation_error_message="Give a percentage or an amount off: one of them, not both.",
            ),
            models.CheckConstraint(
                condition=~Q(duration="repeating") | Q(duration_in_months__isnull=False),
                name="catalog_coupon_repeating_has_months",
                violation_error_message="A repeating coupon needs its number of months.",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True) | Q(valid_until__isnull=True) | Q(valid_from__lt=F("valid_until")),
                name="catalog_coupon_valid_window",
                violation_error_message="Valid until must be later than valid from.",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class PlanMove(TimeStampedModel):
    """A subscription of `from_product` may move to `to_product` (to any of its cycles with an active price).

    Moving to another cycle of the same product needs no row; a move between products stays within one product type
    (hosting to hosting), since the control panel changes a plan's resources, not the kind of service."""

    from_product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="moves_out")
    to_product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="moves_in")
    active = models.BooleanField(default=True, help_text="Switch a move off rather than delete it.")

    class Meta:
        ordering = ("from_product__sort_order", "to_product__sort_order")
        constraints = [
            models.UniqueConstraint(
                fields=("from_product", "to_product"),
                name="catalog_plan_move_unique",
                violation_error_message="This move already exists.",
            ),
            models.CheckConstraint(
                condition=~Q(from_product=models.F("to_product")),
                name="catalog_plan_move_other_product",
                violation_error_message="Another cycle of the same plan is always allowed; a move names another plan.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_product.code} -> {self.to_product.code}"

    def clean(self) -> None:
        if self.from_product_id and self.to_product_id and self.from_product.type != self.to_product.type:
            raise ValidationError(
                {
                    "to_product": f"Moves stay within one product type: {self.from_product.code} is "
                    f"{self.from_product.get_type_display()}, {self.to_product.code} is "
                    f"{self.to_product.get_type_display()}."
                }
            )
