"""Contacts with internationalised addresses go through dispatch() with the rest of the batch.

An address like ``ana@exämple.test`` passes validation; it used to make ``dispatch()`` raise
(the To header) and then cost the next recipient of the batch (the SMTP envelope). Real parts:
the outbox-folder channel on disk, and the SMTP channel against aiosmtpd.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from onetomany import Account, Contact
from onetomany.engine import Engine
from onetomany.plugins.settings import PluginSettings
from onetomany.store import Store

from .conftest import make_program
from .smtp_sink import SmtpSink
from .test_parallel_delivery import NoonClock

PEOPLE = (
    Account(id="a1", name="Northwind"),
    Contact(id="c1", account_id="a1", name="Nancy Davolio", email="nancy@northwind.test"),
    Contact(id="c2", account_id="a1", name="Ana Conceição", email="ana@exämple.test"),
    Contact(id="c3", account_id="a1", name="Zoë", email="zoë@northwind.test"),
    Contact(id="c4", account_id="a1", name="Janet Leverling", email="janet@northwind.test"),
)


def _everyone(tmp_path, settings: PluginSettings):
    from onetomany.program import Audience, EventTrigger, Touch

    program = make_program(
        tmp_path,
        Touch(
            name="welcome",
            trigger=EventTrigger(event="signed_up"),
            channel="email",
            template="welcome",
            audience=Audience(every=True),
        ),
        email=settings,
    )
    # Real time inside the send window, whatever the hour the suite runs.
    engine = Engine(program, store=Store(tmp_path / "store.db"), clock=NoonClock())
    engine.identify(*PEOPLE)
    engine.track("signed_up", account_id="a1")
    return engine


def test_the_outbox_folder_delivers_an_international_domain(tmp_path):
    folder = tmp_path / "outbox"
    settings = PluginSettings(name="email", plugin="outbox", options={"folder": str(folder)})
    with _everyone(tmp_path, settings) as engine:
        assert engine.tick() == 4
        report = engine.dispatch()

    assert (report.sent, report.dead) == (3, 1)
    [dead] = engine.store.outbox_rows(status="dead")
    assert "zoë@northwind.test" in (dead.last_error or "")
    recipients = set()
    for path in folder.glob("*.eml"):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients.add(parsed["To"].addresses[0].addr_spec)
    assert recipients == {"nancy@northwind.test", "ana@xn--exmple-cua.test", "janet@northwind.test"}


@pytest.mark.parametrize("smtputf8", [False, True], ids=["plain-server", "smtputf8-server"])
def test_smtp_delivers_the_rest_of_the_batch(tmp_path, smtputf8):
    with SmtpSink(smtputf8=smtputf8) as sink:
        settings = PluginSettings(
            name="email", plugin="smtp", options={"host": "127.0.0.1", "port": sink.port}
        )
        with _everyone(tmp_path, settings) as engine:
            assert engine.tick() == 4
            report = engine.dispatch()

    delivered = sorted(rcpt for _, [rcpt] in sink.envelopes)
    expected = ["ana@xn--exmple-cua.test", "janet@northwind.test", "nancy@northwind.test"]
    if smtputf8:
        assert (report.sent, report.dead) == (4, 0)
        assert delivered == sorted([*expected, "zoë@northwind.test"])
    else:
        assert (report.sent, report.dead) == (3, 1)
        assert delivered == expected
        [dead] = engine.store.outbox_rows(status="dead")
        assert "'zoë@northwind.test'" in (dead.last_error or "")
        assert "SMTPUTF8" in (dead.last_error or "")
