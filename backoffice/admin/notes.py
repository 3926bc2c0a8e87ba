"""The back office's own rows in the admin: staff notes, read-only (they are added and pinned on the customer page,
and never edited or deleted), for the customer page's "See all notes" link."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from backoffice.admin_tools import EstimatedCountPaginator, ReadOnlyAdminMixin
from backoffice.models import StaffNote


@admin.register(StaffNote)
class StaffNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # backoffice.change_staffnote is the right to pin and unpin, on the customer page; nobody edits a note's text.
    list_display = ("created_at", "customer_link", "author_name", "pinned", "text")
    list_filter = ("pinned",)
    list_select_related = ("customer",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    fields = readonly_fields = ("customer_link", "author_name", "pinned", "body", "created_at", "updated_at")

    @admin.display(description="Customer", ordering="customer__email")
    def customer_link(self, note: StaffNote) -> str:
        url = reverse("admin:accounts_customer_change", args=[note.customer_id])
        return format_html('<a href="{}#notes">{}</a>', url, note.customer)

    @admin.display(description="Note")
    def text(self, note: StaffNote) -> str:
        return Truncator(note.body).chars(120)
