"""Staff's view of provisioning: jobs (provisioning and billing's decisions) with their attempts, hosting accounts
with their status history, and e-mails that need a person."""

from django.contrib import admin, messages
from django.utils import timezone

from backoffice.selectors import JOB_WAITING_TOO_LONG, job_waiting_too_long_q
from provisioning.models import (
    EmailNotification,
    HostingAccount,
    HostingAccountStatusChange,
    ProvisioningAttempt,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.selectors import email_notification_list_needing_attention
from provisioning.services import email_notification_send_again, provisioning_job_retry

# The support actions' permissions (backoffice.models.SupportAction); the Support group holds them.
RETRY_PERMISSION = "backoffice.retry_provisioning_job"
RESEND_PERMISSION = "backoffice.resend_set_password_email"


class JobNeedsPersonFilter(admin.SimpleListFilter):
    """The dashboard's links: failed jobs, and jobs waiting far longer than the sweeper allows."""

    title = "needs a person"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("failed", "Failed"), ("waiting", f"Waiting over {int(JOB_WAITING_TOO_LONG.total_seconds() // 60)} min")]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(status=ProvisioningJobStatus.FAILED)
        if self.value() == "waiting":
            now = timezone.now()
            return queryset.filter(job_waiting_too_long_q(now=now, stale_before=now - JOB_WAITING_TOO_LONG))
        return queryset


@admin.display(description="Subscription")
def subscription_plan(obj) -> str:
    """The plan by name and whose it is, as the pages say it (a subscription's own text carries the plan's code)."""
    subscription = obj.subscription
    return f"{subscription.product.name} for {subscription.customer}"


class ProvisioningAttemptInline(admin.TabularInline):
    model = ProvisioningAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "started_at", "finished_at", "succeeded", "error")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(admin.ModelAdmin):
    list_display = ("id", subscription_plan, "action", "status", "decision_key", "short_reason", "requested_by",
                    "superseded_by", "attempts", "max_attempts", "backend", "next_attempt_at", "updated_at")
    list_filter = (JobNeedsPersonFilter, "action", "status", "backend")
    list_select_related = ("subscription__product", "subscription__customer", "requested_by", "superseded_by")
    search_fields = ("=id", "subscription__domain", "=subscription__customer__email", "=idempotency_key",
                     "=subscription__stripe_subscription_id", "=decision_key")
    readonly_fields = [field.name for field in ProvisioningJob._meta.fields]
    inlines = [ProvisioningAttemptInline]
    actions = ["run_again"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Jobs change only through their worker, billing's decisions and the retry action.
        return False

    @admin.display(description="reason")
    def short_reason(self, job):
        return job.reason if len(job.reason) <= 60 else f"{job.reason[:59]}…"

    def has_retry_permission(self, request):
        return request.user.has_perm(RETRY_PERMISSION)

    @admin.action(description="Run again (failed jobs, with a fresh allowance of attempts)", permissions=["retry"])
    def run_again(self, request, queryset):
        reopened = 0
        for job in queryset:
            done = provisioning_job_retry(job=job)
            reopened += done
            if done:
                message = "Run again: sent again with a fresh allowance of attempts"
            elif job.status == ProvisioningJobStatus.FAILED:
                message = "Run again: nothing done, a later decision about the account overrides it"
            else:
                message = f"Run again: nothing done, the job was {job.status}"
            self.log_change(request, job, message)
        self.message_user(request, f"{reopened} job(s) sent again; jobs that had not failed, or whose decision a "
                                   f"later one overrode, were left alone.",
                          messages.SUCCESS if reopened else messages.WARNING)


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
    search_fields = ("username", "domain", "panel_reference", "subscription__customer__email")
    # The status changes only through suspend/unsuspend/terminate jobs, which the panel confirmed.
    readonly_fields = ("subscription", "status", "status_changed_at", "created_at", "updated_at")
    inlines = [HostingAccountStatusChangeInline]


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
    search_fields = ("to", "checkout_session__stripe_session_id")
    readonly_fields = [field.name for field in EmailNotification._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_resend_permission(self, request):
        return request.user.has_perm(RESEND_PERMISSION)

    @admin.action(description="Send again (failed or stuck e-mails; the customer may receive it twice)",
                  permissions=["resend"])
    def send_again(self, request, queryset):
        reopened = 0
        for notification in queryset:
            done = email_notification_send_again(notification=notification)
            reopened += done
            self.log_change(request, notification, "Send again: queued" if done else
                            "Send again: nothing done, the e-mail was neither failed nor stuck")
        self.message_user(request, f"{reopened} e-mail(s) sent again; others were left alone.",
                          messages.SUCCESS if reopened else messages.WARNING)
