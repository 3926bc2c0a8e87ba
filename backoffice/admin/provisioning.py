"""Staff's view of provisioning: jobs (provisioning and billing's decisions) with their attempts and support's setup
tools, hosting accounts with their status history, and e-mails that need a person."""

from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import Subscription
from backoffice.admin_tools import EstimatedCountPaginator
from backoffice.search import SERVICES, queryset_search
from catalog.models import BillingCycle
from core.exceptions import ApplicationError
from provisioning.models import (
    EmailNotification,
    HostingAccount,
    HostingAccountStatusChange,
    ProvisioningAction,
    ProvisioningAttempt,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.selectors import (
    JOB_WAITING_TOO_LONG,
    email_notification_list_needing_attention,
    provisioning_job_attempts_text,
    provisioning_job_waiting_too_long_by_status,
)
from provisioning.services import email_notification_send_again
from provisioning.support import (
    FIXABLE,
    setup_details,
    setup_fix_and_run_again,
    setup_job_retry,
    setup_job_run_now,
    setup_mark_done_by_hand,
    setup_plan_choices,
)

# The support actions' permissions (backoffice.models.SupportAction); the Support group holds them.
RETRY_PERMISSION = "backoffice.retry_provisioning_job"
RESEND_PERMISSION = "backoffice.resend_set_password_email"


@dataclass(frozen=True)
class SetupTool:
    name: str  # in the URL
    label: str  # the button, the page title and the log line
    permission: str
    form: type | None = None  # a page with a form first; None: a button that POSTs at once


class FixSetupForm(forms.Form):
    domain = forms.CharField(
        required=False,
        max_length=300,
        label="Domain",
        help_text="Checked and written as the checkout does (an internationalised name becomes "
        "its xn-- form). Empty: no domain.",
    )
    product_code = forms.ChoiceField(label="Plan the control panel is asked for")
    billing_cycle = forms.ChoiceField(label="Billing cycle the control panel is told", choices=BillingCycle.choices)
    note = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Note (optional)",
        help_text="What was wrong, for the job's history.",
    )
    seen = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, job: ProvisioningJob, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["product_code"].choices = setup_plan_choices(job=job)


class SetUpByHandForm(forms.Form):
    username = forms.CharField(
        max_length=100,
        label="Username in the control panel",
        help_text="Lower-case letters, digits, dots, hyphens or underscores, starting with a "
        "letter, as the panel shows it.",
    )
    server = forms.CharField(
        max_length=300,
        label="Server",
        help_text="The host name of the server the account is on, e.g. web01.example.net.",
    )
    panel_reference = forms.CharField(required=False, max_length=300, label="Panel's account id (optional)")
    note = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Note (optional)",
        help_text="What was done in the panel, for the job's history.",
    )


SETUP_TOOLS = {
    tool.name: tool
    for tool in (
        SetupTool("retry", "Retry with a fresh allowance", RETRY_PERMISSION),
        SetupTool("fix", "Fix and run again", "backoffice.fix_failed_setup", FixSetupForm),
        SetupTool("by-hand", "Mark as set up by hand", "backoffice.mark_set_up_by_hand", SetUpByHandForm),
        SetupTool("run-now", "Run now", "backoffice.run_provisioning_job_now"),
    )
}


# The "waiting" filter lists the newest this many (as the needs-attention filters: README, Back office).
WAITING_LISTED_MAX = 500


class JobNeedsPersonFilter(admin.SimpleListFilter):
    """The dashboard's links: failed jobs, and jobs waiting far longer than the sweeper allows."""

    title = "needs a person"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("failed", "Failed"),
            ("waiting", f"Waiting over {int(JOB_WAITING_TOO_LONG.total_seconds() // 60)} min"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(status=ProvisioningJobStatus.FAILED)
        if self.value() == "waiting":
            # Staff's rule split by status, each read newest first on (status, created_at) and capped, then merged:
            # the OR of the whole rule over a million jobs is misestimated and sorted whole (200 ms, not 5).
            parts = provisioning_job_waiting_too_long_by_status(now=timezone.now())
            sources = [queryset.filter(part) for part in parts]
            rows = sorted(
                (
                    row
                    for source in sources
                    for row in source.order_by("-created_at").values_list("created_at", "pk")[:WAITING_LISTED_MAX]
                ),
                reverse=True,
            )
            return queryset.filter(pk__in=[pk for _, pk in rows[:WAITING_LISTED_MAX]])
        return queryset


@admin.display(description="Subscription")
def subscription_plan(obj) -> str:
    """The job's or account's subscription as every page names it (the plan, its cycle, whose it is); its product and
    customer come with the list's query (list_select_related)."""
    return str(obj.subscription)


class ProvisioningAttemptInline(admin.TabularInline):
    model = ProvisioningAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "counted_as", "started_at", "finished_at", "outcome", "error")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Counted as")
    def counted_as(self, attempt: ProvisioningAttempt) -> str:
        """Which allowance the attempt used: those before support's last retry no longer count against the job."""
        job = attempt.job
        if attempt.number <= job.allowance_attempts_before:
            return "before support's retry"
        return f"{attempt.number - job.allowance_attempts_before} of {job.allowance}"

    @admin.display(description="Outcome")
    def outcome(self, attempt: ProvisioningAttempt) -> str:
        return "succeeded" if attempt.succeeded else "failed" if attempt.finished_at else "running"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("job")


def _by_service_or_own_fields(model_admin, request, queryset, search_term):
    """A job's or an account's list searched as the subscription list is (its service: domain, username, customer,
    Stripe ids), or by the list's own exact fields; the two ORed."""
    own, may_have_duplicates = admin.ModelAdmin.get_search_results(model_admin, request, queryset, search_term)
    if not search_term.strip():
        return own, may_have_duplicates
    services = queryset_search(queryset=Subscription.objects.order_by(), kind=SERVICES, term=search_term)
    return own | queryset.filter(subscription__in=services.values("pk")), may_have_duplicates


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(admin.ModelAdmin):
    # What support scans a list for, in a desktop window's width: a decision's reason, who asked and the job that
    # overrode it share one column; its key and the backend are on the job's page. No filter by backend either: one
    # backend runs (nearly) every job, so it would only read the whole table.
    list_display = (
        "id",
        subscription_plan,
        "action",
        "status",
        "decision",
        "attempts_summary",
        "next_attempt_at",
        "updated_at",
    )
    list_filter = (JobNeedsPersonFilter, "action", "status")
    list_select_related = ("subscription__product", "subscription__customer", "requested_by", "superseded_by")
    # The service's rules (domain, username, customer's name or e-mail, Stripe ids; backoffice/search.py), a job's id,
    # key or decision key: each index-backed, never a scan of millions of jobs for a substring.
    search_fields = ("=id", "=idempotency_key", "=decision_key")
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = ["attempts_summary", *[field.name for field in ProvisioningJob._meta.fields]]
    # What support reads first; the decision's terms next; the worker's bookkeeping folded away.
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "subscription",
                    "action",
                    "status",
                    "attempts_summary",
                    "last_error",
                    "next_attempt_at",
                    "finished_at",
                    "result",
                )
            },
        ),
        (
            "Decision",
            {"fields": ("decision_key", "reason", "requested_by", "superseded_by", "parameters", "email_context")},
        ),
        (
            "Worker's bookkeeping",
            {
                "classes": ("collapse",),
                "fields": (
                    "id",
                    "idempotency_key",
                    "backend",
                    "attempts",
                    "max_attempts",
                    "allowance_attempts_before",
                    "allowance_granted_at",
                    "allowance_granted_by",
                    "enqueued_at",
                    "lease_expires_at",
                    "started_at",
                    "created_at",
                    "updated_at",
                ),
            },
        ),
    )
    inlines = [ProvisioningAttemptInline]
    actions = ["run_again"]
    # A list of millions of jobs is never counted whole (as the order list).
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    change_form_template = "admin/provisioning/provisioningjob/change_form.html"

    def get_search_results(self, request, queryset, search_term):
        return _by_service_or_own_fields(self, request, queryset, search_term)

    def get_fieldsets(self, request, obj=None):
        if obj is not None and obj.action == ProvisioningAction.PROVISION:
            # A setup carries no decision: its empty terms would only push the attempts down the page.
            return tuple(fieldset for fieldset in self.fieldsets if fieldset[0] != "Decision")
        return self.fieldsets

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Jobs change only through their worker, billing's decisions and support's setup tools.
        return False

    @admin.display(description="Decision")
    def decision(self, job: ProvisioningJob) -> str:
        """The reason (cut at 60 characters), who asked and the job that overrode it, where there are: "Abuse report.
        Asked by support@example.com. Overridden by Unsuspend job 12." A setup carries no decision."""
        parts = []
        if job.reason:
            parts.append(job.reason if len(job.reason) <= 60 else f"{job.reason[:59]}…")
        if job.requested_by:
            parts.append(f"Asked by {job.requested_by}.")
        if job.superseded_by:
            parts.append(f"Overridden by {job.superseded_by}.")
        return " ".join(parts) or self.get_empty_value_display()

    @admin.display(description="Attempts", ordering="attempts")
    def attempts_summary(self, job: ProvisioningJob) -> str:
        return provisioning_job_attempts_text(job=job)

    def has_retry_permission(self, request):
        return request.user.has_perm(RETRY_PERMISSION)

    @admin.action(description="Run again (failed jobs, with a fresh allowance of attempts)", permissions=["retry"])
    def run_again(self, request, queryset):
        reopened = 0
        for job in queryset[:100]:
            outcome = setup_job_retry(job_id=job.pk, by=request.user)
            reopened += outcome.done
            self._log(request, job, SETUP_TOOLS["retry"], outcome.message)
        self.message_user(
            request,
            f"{reopened} job(s) sent again; jobs that had not failed, or whose decision a "
            f"later one overrode, were left alone (each job's history says why).",
            messages.SUCCESS if reopened else messages.WARNING,
        )

    # --- The job page and support's setup tools ------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if job is not None and self.has_view_permission(request, job):
            extra_context.update(self._setup_context(request, job))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_object(self, request, object_id, from_field=None):
        job = super().get_object(request, object_id, from_field)
        if job is not None:
            # One query for what the page shows about the setup.
            job = (
                ProvisioningJob.objects.select_related(
                    "subscription__product",
                    "subscription__customer",
                    "subscription__checkout_session",
                    "subscription__hosting_account",
                    "allowance_granted_by",
                    "requested_by",
                )
                .filter(pk=job.pk)
                .first()
            )
        return job

    def _setup_context(self, request, job: ProvisioningJob) -> dict:
        """Which tools apply to the job as it stands and which the person may use: a tool that does not apply is
        not offered (the service would refuse it anyway, saying why)."""
        is_setup = job.action == ProvisioningAction.PROVISION
        now = timezone.now()
        applies = {
            "retry": job.status == ProvisioningJobStatus.FAILED,
            "fix": is_setup and job.status in FIXABLE,
            "by-hand": is_setup and job.status in FIXABLE,
            "run-now": job.status in (ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING)
            or (
                job.status == ProvisioningJobStatus.RUNNING
                and job.lease_expires_at is not None
                and job.lease_expires_at < now
            ),
        }
        tools = [
            {
                "name": tool.name,
                "label": tool.label,
                "form": tool.form is not None,
                "url": reverse("admin:provisioning_provisioningjob_setup", args=[job.pk, tool.name]),
            }
            for tool in SETUP_TOOLS.values()
            if applies[tool.name] and request.user.has_perm(tool.permission)
        ]
        subscription = job.subscription
        account = getattr(subscription, "hosting_account", None)
        return {
            "setup_tools": tools,
            "setup": setup_details(job=job) if is_setup else None,
            "setup_account": account,
            "attempts_text": provisioning_job_attempts_text(job=job),
            "due_later": job.next_attempt_at if job.next_attempt_at and job.next_attempt_at > now else None,
            "order_url": reverse("admin:checkout_checkoutsession_change", args=[subscription.checkout_session_id])
            if request.user.has_perm("checkout.view_checkoutsession")
            else None,
        }

    def get_urls(self):
        return [
            path(
                "<path:object_id>/setup/<str:tool>/",
                self.admin_site.admin_view(self.setup_tool_view),
                name="provisioning_provisioningjob_setup",
            ),
            *super().get_urls(),
        ]

    def setup_tool_view(self, request, object_id, tool):
        """A setup tool: its form page (GET; fix and by hand), or the action itself (POST only). The tool's own
        permission is checked first, so a person without it gets 403 whatever they send."""
        spec = SETUP_TOOLS.get(tool)
        if spec is None:
            raise Http404("No such setup tool")
        if not request.user.has_perm(spec.permission):
            raise PermissionDenied
        if request.method != "POST" and spec.form is None:
            return HttpResponseNotAllowed(["POST"])
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404("No such provisioning job")
        job_url = reverse("admin:provisioning_provisioningjob_change", args=[job.pk])
        if spec.form is None:
            service = setup_job_retry if spec.name == "retry" else setup_job_run_now
            outcome = service(job_id=job.pk, by=request.user)
            return self._done(request, job, spec, outcome, job_url)

        if request.method == "GET":
            details = setup_details(job=job)
            initial = (
                {
                    "domain": details.domain,
                    "product_code": details.product_code,
                    "billing_cycle": details.billing_cycle,
                    "seen": details.fingerprint,
                }
                if spec.name == "fix"
                else {}
            )
            return self._tool_page(request, job, spec, self._form(spec, job, initial=initial), job_url)
        form = self._form(spec, job, data=request.POST)
        if not form.is_valid():
            return self._tool_page(request, job, spec, form, job_url)
        data = form.cleaned_data
        try:
            if spec.name == "fix":
                outcome = setup_fix_and_run_again(
                    job_id=job.pk,
                    domain=data["domain"],
                    product_code=data["product_code"],
                    billing_cycle=data["billing_cycle"],
                    seen=data["seen"],
                    note=data["note"],
                    by=request.user,
                )
            else:
                outcome = setup_mark_done_by_hand(
                    job_id=job.pk,
                    username=data["username"],
                    server=data["server"],
                    panel_reference=data["panel_reference"],
                    note=data["note"],
                    by=request.user,
                )
        except ApplicationError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
            return self._tool_page(request, job, spec, form, job_url)
        return self._done(request, job, spec, outcome, job_url)

    @staticmethod
    def _form(spec, job, **kwargs):
        return spec.form(job=job, **kwargs) if spec.form is FixSetupForm else spec.form(**kwargs)

    def _done(self, request, job, spec, outcome, job_url):
        self._log(request, job, spec, outcome.message)
        self.message_user(request, outcome.message, messages.SUCCESS if outcome.done else messages.WARNING)
        return HttpResponseRedirect(job_url)

    def _log(self, request, job, spec, message):
        """In the job's history and in its order's, where support reads an order's timeline."""
        line = f"{spec.label}: {message}"
        self.log_change(request, job, line)
        session = job.subscription.checkout_session
        self.log_change(request, session, line)

    def _tool_page(self, request, job, spec, form, job_url):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": job,
            "title": f"{spec.label}: job #{job.pk}",
            "spec": spec,
            "form": form,
            "job_url": job_url,
            "setup": setup_details(job=job),
            "attempts_text": provisioning_job_attempts_text(job=job),
            "max_attempts": settings.PROVISIONING_MAX_ATTEMPTS,
        }
        return TemplateResponse(request, "admin/provisioning/provisioningjob/setup_tool.html", context)


class HostingAccountStatusChangeInline(admin.TabularInline):
    """The account's status history, as the control panel confirmed it; written only by the jobs."""

    model = HostingAccountStatusChange
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "from_status", "to_status", "reason", "job")
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(HostingAccount)
class HostingAccountAdmin(admin.ModelAdmin):
    list_select_related = ("subscription__product", "subscription__customer")
    list_display = ("username", "server", "domain", "status", "status_changed_at", subscription_plan, "created_at")
    list_filter = ("status",)
    search_fields = ("=panel_reference",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    # The status changes only through suspend/unsuspend/terminate jobs, which the panel confirmed.
    readonly_fields = (
        "customer_link",
        "subscription",
        "status",
        "status_changed_at",
        "set_up_by",
        "created_at",
        "updated_at",
    )
    inlines = [HostingAccountStatusChangeInline]

    def get_search_results(self, request, queryset, search_term):
        return _by_service_or_own_fields(self, request, queryset, search_term)

    @admin.display(description="Customer")
    def customer_link(self, account: HostingAccount) -> str:
        customer = account.subscription.customer
        url = reverse("admin:accounts_customer_change", args=[customer.pk])
        return format_html('<a href="{}">{}</a> ({})', url, customer, customer.email)


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("yes", "Failed or stuck in sending")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return email_notification_list_needing_attention(now=timezone.now(), queryset=queryset)
        return queryset


@admin.register(EmailNotification)
class EmailNotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "purpose", "to", "status", "attempts", "sent_at", "updated_at")
    list_filter = (NeedsAttentionFilter, "status", "purpose")
    # The recipient exactly (as typed or lower case: provisioning_email_to) or the order's Stripe session id.
    search_fields = ("=to", "=checkout_session__stripe_session_id")
    readonly_fields = [field.name for field in EmailNotification._meta.fields]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_resend_permission(self, request):
        return request.user.has_perm(RESEND_PERMISSION)

    @admin.action(
        description="Send again (failed or stuck e-mails; the customer may receive it twice)", permissions=["resend"]
    )
    def send_again(self, request, queryset):
        reopened = 0
        for notification in queryset:
            done = email_notification_send_again(notification=notification)
            reopened += done
            self.log_change(
                request,
                notification,
                "Send again: queued" if done else "Send again: nothing done, the e-mail was neither failed nor stuck",
            )
        self.message_user(
            request,
            f"{reopened} e-mail(s) sent again; others were left alone.",
            messages.SUCCESS if reopened else messages.WARNING,
        )
