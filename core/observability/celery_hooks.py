"""Celery signal receivers: the request id travels with each task, and workers leave a heartbeat for /metrics.

Connected by config/celery.py (celery_signals_connect), so both the processes that send tasks (web, beat, workers)
and those that run them have them. The id rides in the message's headers, so it survives transaction.on_commit, the
outbox's send and a countdown; a task sent while no id is set (by beat, or by the sweeper) runs under its own task id.
"""

import contextvars
import time

from celery import signals

from core.observability import request_id as ids

# The Celery message header that carries the id; Celery copies custom headers into task.request.
TASK_HEADER = "x_request_id"
WORKER_HEARTBEAT_KEY = "observability:worker-heartbeat"
HEARTBEAT_EVERY_SECONDS = 5.0

_task_tokens: dict[str, contextvars.Token] = {}
_last_heartbeat = 0.0


def _task_publish(headers=None, **kwargs) -> None:
    request_id = ids.request_id_get()
    if headers is not None and request_id and TASK_HEADER not in headers:
        headers[TASK_HEADER] = request_id


def _task_start(task_id=None, task=None, **kwargs) -> None:
    sent_with = getattr(task.request, TASK_HEADER, None) if task is not None else None
    # A task run in-process (eager: tests, `make run`) keeps the id of the request it runs in.
    request_id = (
        ids.request_id_sanitize(sent_with) if sent_with else ids.request_id_get() or task_id or ids.request_id_new()
    )
    _task_tokens[task_id] = ids.request_id_set(request_id)


def _task_end(task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            ids.request_id_reset(token)
        except ValueError:  # set in another context (a pool that runs tasks elsewhere): clear instead
            ids.request_id_set(None)


def worker_heartbeat(**kwargs) -> None:
    """After each task: the time, in the shared cache, at most every few seconds per process. Beat has a sweeper run
    every 30 to 60 s, so a silent minute means no worker is running tasks, or no beat is sending them. The throttle
    keeps a burst of tasks (a renewal storm, a backlog after an outage) from adding a Redis write to each, and while
    Redis is down from adding a failed call and a log line to each; a heartbeat seconds old says all the alert needs."""
    global _last_heartbeat
    now = time.time()
    if now - _last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
        from django.core.cache import cache

        cache.set(WORKER_HEARTBEAT_KEY, now, timeout=None)
        _last_heartbeat = now


def celery_signals_connect() -> None:
    signals.before_task_publish.connect(_task_publish, weak=False, dispatch_uid="observability.task_publish")
    signals.task_prerun.connect(_task_start, weak=False, dispatch_uid="observability.task_start")
    signals.task_postrun.connect(_task_end, weak=False, dispatch_uid="observability.task_end")
    signals.task_postrun.connect(worker_heartbeat, weak=False, dispatch_uid="observability.worker_heartbeat")
