"""Pages of accounts: the client area under /account/. Sign-in, sign-out and password reset are Django's auth views
(throttled forms from accounts/forms.py); a customer chooses a first password from the link in the set-password
e-mail; a signed-in user sees the services of the customers they belong to and, by role, their invoices, the
billing portal, cancellation at period end (and its undo) and plan changes.

Every page that takes an id looks it up among the user's own customers' services: any other id is a 404, so a
guesser learns nothing about which ids exist."""

import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.forms import ClientLoginForm, ClientPasswordResetForm
from accounts.selectors import ClientService, client_service_get, client_service_invoices, client_services_for_user
from billing.plan_changes import (
    plan_change_options,
    plan_change_preview,
    subscription_plan_change,
    subscription_plan_change_blocker,
)
from billing.portal import billing_portal_url
from billing.services import subscription_cancel, subscription_cancel_undo
from catalog.models import Price
from core.exceptions import ApplicationError

CANCEL_REASON = "Cancelled by the customer in the client area"
UNDO_REASON = "Cancellation undone by the customer in the client area"


# --- Signing in and out, passwords --------------------------------------------------------------------------------


class PasswordSetView(auth_views.PasswordResetConfirmView):
    """Django's password-reset confirmation as the first-password page: the same token (default_token_generator),
    which stops working once the password is set, and the same validators."""

    template_name = "accounts/password_set.html"
    success_url = reverse_lazy("accounts:password_set_done")
    title = "Choose your password"


class PasswordResetConfirmView(PasswordSetView):
    """The link of the password-reset e-mail: the same page and token as the first password."""

    title = "Choose a new password"


class PasswordSetDoneView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_set_done.html"
    title = "Your password is set"


class ClientLoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = ClientLoginForm
    redirect_authenticated_user = True
    extra_context = {"title": "Sign in"}


class ClientLogoutView(auth_views.LogoutView):
    """POST only (Django's LogoutView since 5.0): a link or an image elsewhere cannot sign anyone out."""

    next_page = reverse_lazy("accounts:login")

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.success(request, "You are signed out.")
        return response


class ClientPasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    form_class = ClientPasswordResetForm
    success_url = reverse_lazy("accounts:password_reset_sent")
    title = "Reset your password"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


class ClientPasswordResetSentView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_sent.html"
    title = "Check your e-mail"


# --- The client area ---------------------------------------------------------------------------------------------


class IdempotencyKeyForm(forms.Form):
    """The hidden key a confirmation page is drawn with: a second click or a resubmitted page asks Stripe once."""

    idempotency_key = forms.CharField(max_length=100, min_length=10, widget=forms.HiddenInput)


def _new_key(prefix: str) -> str:
    return f"client-{prefix}-{uuid.uuid4()}"


def _service_or_404(request, pk: int) -> ClientService:
    service = client_service_get(user=request.user, subscription_id=pk)
    if service is None:
        raise Http404("No such service.")
    return service


def _forbidden(request, service: ClientService, what: str):
    return render(
        request, "accounts/forbidden.html", {"title": "Not allowed", "service": service, "what": what}, status=403
    )


def _service_url(service: ClientService) -> str:
    return reverse("accounts:service", args=[service.subscription.pk])


def _day(moment) -> str:
    return date_format(timezone.localtime(moment).date(), "j F Y") if moment else ""


@login_required
@require_GET
def service_list(request):
    customers = client_services_for_user(user=request.user)
    return render(
        request,
        "accounts/services.html",
        {
            "title": "Your services",
            "customers": customers,
            "service_count": sum(len(services) for _, _, services in customers),
        },
    )


@login_required
@require_GET
def service_detail(request, pk: int):
    service = _service_or_404(request, pk)
    return render(
        request,
        "accounts/service.html",
        {
            "title": f"{service.subscription.product.name}",
            "service": service,
            "invoices": client_service_invoices(subscription=service.subscription) if service.sees_billing else None,
            "undo_key": _new_key("undo"),
        },
    )


@login_required
@require_POST
def billing_portal(request, pk: int):
    """A Stripe Billing Portal session for the service's customer, made on the click (it expires within minutes);
    the portal sends the customer back to the service page."""
    service = _service_or_404(request, pk)
    if not service.sees_billing:
        return _forbidden(request, service, "manage the payment method")
    try:
        url = billing_portal_url(
            subscription=service.subscription, return_url=request.build_absolute_uri(_service_url(service))
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect(_service_url(service))
    return redirect(url)


@login_required
@require_http_methods(["GET", "POST"])
def service_cancel(request, pk: int):
    """Cancel at the end of the paid period, after a confirmation page: the service runs until then, and the
    customer can change their mind until it ends."""
    service = _service_or_404(request, pk)
    if not service.sees_billing:
        return _forbidden(request, service, "cancel this service")
    form = IdempotencyKeyForm(request.POST or None, initial={"idempotency_key": _new_key("cancel")})
    if request.method == "POST":
        if not form.is_valid():
            messages.error(request, "This form is out of date; please confirm again.")
            return redirect("accounts:service_cancel", pk=pk)
        try:
            subscription_cancel(
                subscription=service.subscription,
                at_period_end=True,
                reason=CANCEL_REASON,
                actor=request.user,
                idempotency_key=form.cleaned_data["idempotency_key"],
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect(_service_url(service))
        service = _service_or_404(request, pk)
        ends = _day(service.subscription.current_period_end)
        messages.success(
            request,
            f"Your service is cancelled: it keeps running until {ends}, and nothing more "
            f"is charged. You can undo this until then."
            if ends
            else "Your service is cancelled at the end of its period.",
        )
        return redirect(_service_url(service))
    if not service.running or service.subscription.cancel_at_period_end:
        messages.info(request, "This service is not running on a renewing plan: there is nothing to cancel.")
        return redirect(_service_url(service))
    return render(
        request,
        "accounts/service_cancel.html",
        {"title": "Cancel at the end of the period", "service": service, "form": form},
    )


@login_required
@require_POST
def service_cancel_undo(request, pk: int):
    service = _service_or_404(request, pk)
    if not service.sees_billing:
        return _forbidden(request, service, "change this service's cancellation")
    form = IdempotencyKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "This form is out of date; please try again.")
        return redirect(_service_url(service))
    try:
        subscription_cancel_undo(
            subscription=service.subscription,
            reason=UNDO_REASON,
            actor=request.user,
            idempotency_key=form.cleaned_data["idempotency_key"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Your service is no longer cancelled: it renews as before.")
    return redirect(_service_url(service))


class PlanChangeForm(IdempotencyKeyForm):
    # The preview's proration time, so the change charges exactly what the preview showed.
    proration_date = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)


def _plan_change_service(request, pk: int):
    service = _service_or_404(request, pk)
    if not service.sees_billing:
        return service, _forbidden(request, service, "change this service's plan")
    if blocker := subscription_plan_change_blocker(subscription=service.subscription):
        messages.info(request, blocker)
        return service, redirect(_service_url(service))
    return service, None


@login_required
@require_GET
def plan_change_options_page(request, pk: int):
    service, refused = _plan_change_service(request, pk)
    if refused:
        return refused
    return render(
        request,
        "accounts/plan_change_options.html",
        {"title": "Change plan", "service": service, "prices": plan_change_options(subscription=service.subscription)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def plan_change_preview_page(request, pk: int, price_id: int):
    """What the move would charge or credit now and at the next renewal (Stripe's invoice preview), then the change
    itself on confirmation. Only the moves the catalog allows for this service exist here: any other price is a
    404, as another customer's service is."""
    service, refused = _plan_change_service(request, pk)
    if refused:
        return refused
    if request.method == "POST":
        # The service checks the move (and returns the first change for a resubmitted key, when the price is no
        # longer an option because it is the plan now).
        price = Price.objects.select_related("product").filter(pk=price_id).first()
        if price is None:
            raise Http404("No such plan.")
        form = PlanChangeForm(request.POST)
        if not form.is_valid():
            messages.error(request, "This form is out of date; please look at the preview again.")
            return redirect("accounts:plan_change_preview", pk=pk, price_id=price_id)
        try:
            subscription_plan_change(
                subscription=service.subscription,
                price=price,
                actor=request.user,
                idempotency_key=form.cleaned_data["idempotency_key"],
                proration_date=form.cleaned_data["proration_date"],
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("accounts:plan_change_options", pk=pk)
        messages.success(
            request, f"Your plan is now {price.product.name}, {price.get_billing_cycle_display().lower()}."
        )
        return redirect(_service_url(service))
    price = next((p for p in plan_change_options(subscription=service.subscription) if p.pk == price_id), None)
    if price is None:
        raise Http404("No such plan for this service.")
    try:
        preview = plan_change_preview(subscription=service.subscription, price=price)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("accounts:plan_change_options", pk=pk)
    form = PlanChangeForm(initial={"idempotency_key": _new_key("plan"), "proration_date": preview.proration_date})
    return render(
        request,
        "accounts/plan_change_preview.html",
        {"title": "Confirm the new plan", "service": service, "price": price, "preview": preview, "form": form},
    )
