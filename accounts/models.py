"""People and billing accounts: a user logs in with an e-mail address."""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from core.models import TimeStampedModel


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("A user needs an e-mail address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(max_length=254, unique=True)
    full_name = models.CharField(max_length=255, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Customer(TimeStampedModel):
    """The billing account (a person or a company) that holds subscriptions; several users may act for it."""

    name = models.CharField(max_length=255, blank=True)
    email = models.EmailField(max_length=254, help_text="Billing contact.")
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    users = models.ManyToManyField(User, through="CustomerMembership", related_name="customers")

    class Meta:
        indexes = [models.Index(Lower("email"), name="accounts_customer_email_ci")]

    def __str__(self) -> str:
        return self.name or self.email


class CustomerRole(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Administrator"
    BILLING = "billing", "Billing"
    TECHNICAL = "technical", "Technical"


class CustomerMembership(TimeStampedModel):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=CustomerRole.choices, default=CustomerRole.OWNER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("customer", "user"), name="accounts_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.customer}"


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses."""

    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"
    CANCELED = "canceled", "Canceled"


SUBSCRIPTION_ENDED_STATUSES = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)


class Subscription(TimeStampedModel):
    """One plan a customer pays for, made from exactly one paid checkout session."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="subscriptions")
    price = models.ForeignKey("catalog.Price", on_delete=models.PROTECT, related_name="subscriptions")
    checkout_session = models.OneToOneField(
        "checkout.CheckoutSession", on_delete=models.PROTECT, related_name="subscription"
    )
    stripe_subscription_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    billing_cycle = models.CharField(max_length=20)
    amount = models.PositiveIntegerField(help_text="Charged per billing period, in cents, before discounts.")
    currency = models.CharField(max_length=3)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True, help_text="When Stripe recorded the cancellation.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the subscription ended at Stripe.")
    stripe_test_clock_id = models.CharField(
        max_length=255, blank=True, help_text="The Stripe test clock the subscription lives on, if any."
    )
    stripe_state_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Stripe's time of the newest state applied: an older event or re-read never overwrites it.",
    )
    domain = models.CharField(max_length=253, blank=True)

    class Meta:
        indexes = [models.Index(fields=("status", "ended_at"), name="accounts_sub_status_ended")]

    @property
    def is_ended(self) -> bool:
        return self.status in SUBSCRIPTION_ENDED_STATUSES

    def __str__(self) -> str:
        # The plan by name, as customers and staff read it ("Shared Hosting Basic (monthly) for Jane Doe"); its code is
        # on the subscription's page.
        return f"{self.product.name} ({self.billing_cycle}) for {self.customer}"
