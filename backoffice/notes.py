"""Staff notes on a customer: adding one and pinning or unpinning it, and the form the customer page posts.

Notes are never edited or deleted: what someone wrote stays as written, under their name. A pinned note is shown on
every order and subscription page of the customer until someone unpins it.
"""

from datetime import timedelta

from django import forms
from django.db import transaction
from django.utils import timezone

from accounts.models import Customer
from backoffice.models import StaffNote
from core.exceptions import ApplicationError

NOTE_MAX_LENGTH = 5000
# The same text from the same person on the same customer within this window is one note sent twice (a double
# click, a reload that re-posts), not a second note.
DOUBLE_SUBMIT_WINDOW = timedelta(seconds=10)


class StaffNoteForm(forms.Form):
    body = forms.CharField(
        label="Note",
        max_length=NOTE_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": NOTE_MAX_LENGTH}),
    )
    pinned = forms.BooleanField(
        label="Pin it: show it on every order and subscription of this customer", required=False
    )


def note_create(*, customer: Customer, author, body: str, pinned: bool = False) -> tuple[StaffNote, bool]:
    """Add a note under the author's name; (the note, True), or (the note already made, False) when the same author
    sent the same text for this customer less than DOUBLE_SUBMIT_WINDOW ago.

    The customer's row is locked while we look for that earlier note, so two submits arriving together (two
    requests of one double click) make one note: the second waits for the first to commit, then finds it.
    """
    body = (body or "").strip()
    if not body:
        raise ApplicationError("A note needs some text.", code="note_empty", field="body")
    if len(body) > NOTE_MAX_LENGTH:
        raise ApplicationError(
            f"A note is at most {NOTE_MAX_LENGTH} characters; this one has {len(body)}.",
            code="note_too_long",
            field="body",
        )
    author_name = (author.get_full_name() or author.email)[:150]
    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=customer.pk).values_list("pk", flat=True).first()
        earlier = (
            StaffNote.objects.filter(
                customer=customer, author=author, body=body, created_at__gte=timezone.now() - DOUBLE_SUBMIT_WINDOW
            )
            .order_by("-created_at", "-pk")
            .first()
        )
        if earlier is not None:
            return earlier, False
        note = StaffNote.objects.create(
            customer=customer, author=author, author_name=author_name, body=body, pinned=pinned
        )
    return note, True


def note_pin_set(*, note: StaffNote, pinned: bool) -> bool:
    """Pin or unpin the note; False when it already was as asked (a second click changes nothing)."""
    with transaction.atomic():
        changed = (
            StaffNote.objects.filter(pk=note.pk).exclude(pinned=pinned).update(pinned=pinned, updated_at=timezone.now())
        )
    note.pinned = pinned
    return bool(changed)
