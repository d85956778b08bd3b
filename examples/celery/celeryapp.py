"""The Celery app of the example: the onetomany tasks, routed a queue per channel, on a beat.

    celery -A celeryapp worker -Q onetomany,onetomany.inapp -n main@%h      # tick, sync, in-app
    celery -A celeryapp worker -Q onetomany.email -n email@%h               # email only
    celery -A celeryapp beat

The broker (and result backend) is Redis at CELERY_BROKER_URL; ONETOMANY_PROGRAM points at
another program folder than this one.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from celery import Celery

from onetomany.celery import beat_schedule, register

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

app = Celery("acme", broker=BROKER, backend=os.environ.get("CELERY_RESULT_BACKEND", BROKER))
tasks = register(app, os.environ.get("ONETOMANY_PROGRAM", Path(__file__).parent))
app.conf.update(
    task_default_queue=tasks.queue,
    task_routes=(tasks.route,),
    beat_schedule=beat_schedule(
        tasks, tick=timedelta(minutes=1), dispatch=timedelta(seconds=15), sync=None
    ),
    # A task lost with its worker comes back (acks_late); one message at a time per process,
    # so a long dispatch does not hold others it prefetched.
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
