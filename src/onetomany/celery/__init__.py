"""Celery integration (the ``onetomany[celery]`` extra): tasks for sync, tick and dispatch, a
beat schedule, and routing by channel, for hosts that already run Celery.

Nothing here is a queue or a scheduler of its own: Celery carries the calls, beat times them,
and the store keeps every guarantee. Each task may run twice (a redelivered message, a retry,
two beats) without harm: a tick queues each touch once per idempotency key (the outbox's
unique key, written with the event cursor in one transaction), and a dispatch sends only the
rows it claims (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two dispatches never share a row.

::

    from celery import Celery
    from onetomany.celery import register, beat_schedule

    app = Celery("acme", broker="redis://localhost:6379/0")
    tasks = register(app, "path/to/program")
    app.conf.beat_schedule = beat_schedule(tasks)
    app.conf.task_routes = (tasks.route,)
"""

from onetomany.celery.tasks import (
    EngineFactory,
    OnetomanyTasks,
    beat_schedule,
    queue_for,
    register,
)

__all__ = ["EngineFactory", "OnetomanyTasks", "beat_schedule", "queue_for", "register"]
