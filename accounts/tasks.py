"""Celery tasks of accounts: the password-reset e-mail, sent off the request so that the page answers an address we
know and one we do not in the same way and the same time."""

from celery import shared_task


@shared_task(name="accounts.password_reset_email_send", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def password_reset_email_send_task(email: str) -> int:
    from accounts.services import password_reset_email_send

    return password_reset_email_send(email=email)
