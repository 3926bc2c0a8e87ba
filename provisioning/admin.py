"""Staff's view of provisioning: jobs with their attempts, hosting accounts, and e-mails that need a person."""

from django.contrib import admin, messages
from django.utils import timezone

from provisioning.models import EmailNotification, HostingAccount, ProvisioningAttempt, ProvisioningJob
from provisioning.selectors import email_notification_list_needing_attention
from provisioning.services import email_notification_send_again, provisioning_job_retry


class ProvisioningAttemptInline(admin.TabularInline):
    model = ProvisioningAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "started_at", "finished_at", "succeeded", "error")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(admin.ModelAdmin):
    list_display = ("id", "subscription", "status", "attempts", "max_attempts", "backend", "next_attempt_at",
                    "updated_at")
    list_filter = ("status", "backend")
    search_fields = ("=id", "subscription__domain", "subscription__customer__email", "=idempotency_key")
    readonly_fields = [field.name for field in ProvisioningJob._meta.fields]
    inlines = [ProvisioningAttemptInline]
    actions = ["run_again"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Run again (failed jobs, with a fresh allowance of attempts)")
    def run_again(self, request, queryset):
        reopened = sum(provisioning_job_retry(job=job) for job in queryset)
        self.message_user(request, f"{reopened} job(s) sent again; jobs that had not failed were left alone.",
                          messages.SUCCESS if reopened else messages.WARNING)


@admin.register(HostingAccount)
class HostingAccountAdmin(admin.ModelAdmin):
    list_display = ("username", "server", "domain", "subscription", "created_at")
    search_fields = ("username", "domain", "panel_reference", "subscription__customer__email")
    readonly_fields = ("subscription", "created_at", "updated_at")


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

    @admin.action(description="Send again (failed or stuck e-mails; the customer may receive it twice)")
    def send_again(self, request, queryset):
        reopened = sum(email_notification_send_again(notification=notification) for notification in queryset)
        self.message_user(request, f"{reopened} e-mail(s) sent again; others were left alone.",
                          messages.SUCCESS if reopened else messages.WARNING)
