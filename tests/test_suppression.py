"""The suppression list: normalised addresses, CSV in and out, and the ``suppression`` policy
that skips a send to a listed address on every channel (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from onetomany import Contact
from onetomany.cli import app
from onetomany.engine import Engine
from onetomany.errors import InputError
from onetomany.model import ChannelKind, OutboxStatus
from onetomany.model.emails import plain_email
from onetomany.plugins.settings import PluginSettings
from onetomany.program import Touch
from onetomany.rules.suppression import Reason, normalise_address, read_csv
from onetomany.store import NewTouch
from onetomany.testing import RecordingChannel, make_plugins

from .conftest import PEOPLE, make_program
from .test_emails import _LABELS, _PIECES

# -- normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_as", "key"),
    [
        ("Nancy@Northwind.TEST", "nancy@northwind.test"),
        ("  nancy@northwind.test ", "nancy@northwind.test"),
        ("ana@Exämple.test", "ana@xn--exmple-cua.test"),
        ("ana@xn--exmple-cua.test", "ana@xn--exmple-cua.test"),
        ("+55 11 91234-5678", "+5511912345678"),
        ("+5511912345678", "+5511912345678"),
        ("+1 (415) 555-2671", "+14155552671"),
    ],
)
def test_addresses_are_keyed_normalised(given_as, key):
    assert normalise_address(given_as) == key


@pytest.mark.parametrize("bad", ["", "   ", "not an address", "nancy@", "+1 555", "12"])
def test_a_bad_address_is_refused_by_name(bad):
    with pytest.raises(InputError, match="suppression address"):
        normalise_address(bad)


@given(st.emails())
def test_normalising_is_idempotent_and_ignores_case(address):
    try:
        key = normalise_address(address)
    except InputError:
        return  # hypothesis' grammar allows a few forms email-validator refuses
    assert normalise_address(key) == key
    assert normalise_address(address.upper()) == key
    assert key == key.lower() and key.rsplit("@", 1)[1].isascii()


def _validator_key(address: str) -> str | None:
    """The key email-validator's own verdict gives (the slow path), None when it refuses."""
    try:
        valid = validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return None
    return f"{valid.local_part.lower()}@{valid.ascii_domain.lower()}"


@settings(max_examples=400, deadline=None)
@given(local=_PIECES, labels=_LABELS, noise=_PIECES)
def test_the_fast_path_keys_an_address_as_email_validator_does(local, labels, noise):
    """Plain ASCII addresses skip email-validator (the suppression policy keys every row's
    address); the key and the verdict stay email-validator's for every address."""
    for address in (f"{local}@{'.'.join(labels)}", f"{local}@{'.'.join(labels)}{noise}"):
        text = address.strip()
        if "@" not in text:
            continue
        expected = _validator_key(text)
        if plain_email(text):
            assert expected == text.lower(), address
        if expected is None:
            with pytest.raises(InputError, match="suppression address"):
                normalise_address(address)
        else:
            assert normalise_address(address) == expected


# -- CSV ----------------------------------------------------------------------------------------


def test_a_csv_with_a_bad_line_is_refused_whole_naming_each_line(frozen_clock):
    text = (
        "address,reason,note\n"
        "ok@northwind.test,hard_bounce,\n"
        "nobody,manual,\n"
        "x@northwind.test,angry,\n"
        "y@northwind.test,legal,a,extra\n"
    )
    with pytest.raises(InputError) as caught:
        read_csv(text, now=frozen_clock.now())
    message = str(caught.value)
    assert "3 bad line(s), nothing imported" in message
    assert "line 3: suppression address 'nobody'" in message
    assert "line 4: suppression reason 'angry'" in message
    assert "line 5: more fields" in message


def test_a_csv_without_the_needed_columns_is_refused(frozen_clock):
    with pytest.raises(InputError, match="lacks reason"):
        read_csv("address\nok@northwind.test\n", now=frozen_clock.now())
    with pytest.raises(InputError, match="unknown column"):
        read_csv("address,reason,colour\nok@northwind.test,manual,red\n", now=frozen_clock.now())


# -- the engine's API and the policy -----------------------------------------------------------

SMS = "Hi {{ contact.first_name }}, welcome aboard.\n"


@pytest.fixture
def engine(tmp_path, frozen_clock, store):
    program = make_program(
        tmp_path,
        *(
            Touch(name=f"hello-{kind}", trigger=None, channel=kind, template="welcome")
            for kind in ("email", "sms", "inapp")
        ),
        email=PluginSettings(name="email", plugin="recording"),
        sms=PluginSettings(name="sms", plugin="recording", options={"kind": "sms"}),
        inapp=PluginSettings(name="inapp", plugin="recording", options={"kind": "inapp"}),
    )
    (tmp_path / "templates" / "welcome.sms.txt").write_text(SMS)
    engine = Engine(
        program,
        store=store,
        clock=frozen_clock,
        plugins=make_plugins(),
        channels={
            "email": RecordingChannel(),
            "sms": RecordingChannel(kind=ChannelKind.SMS),
            "inapp": RecordingChannel(kind=ChannelKind.INAPP),
        },
    )
    engine.identify(
        *PEOPLE,
        Contact(
            id="c4",
            account_id="a2",
            name="Ana Souza",
            email="ana@exämple.test",
            phone="+5511912345678",
        ),
    )
    yield engine
    engine.dispatcher.close()


def queue(engine: Engine, contact_id: str, channel: str, n: int = 0) -> None:
    engine.store.enqueue(
        [
            NewTouch(
                idempotency_key=f"{channel}-{contact_id}-{n}",
                program="acme",
                touch=f"hello-{channel}",
                channel=channel,
                template="welcome",
                contact_id=contact_id,
                account_id=None,
                available_at=engine.clock.now(),
            )
        ],
        now=engine.clock.now(),
    )


def statuses(engine: Engine) -> dict[str, tuple[str, str | None]]:
    return {r.idempotency_key: (r.status, r.last_error) for r in engine.store.outbox_rows()}


def sent_to(engine: Engine, channel: str) -> list[str]:
    return [m.contact_id or "" for m in engine.channels[channel].sent]  # type: ignore[attr-defined]


def test_a_suppressed_email_is_skipped_with_its_reason_and_never_retried(engine, frozen_clock):
    # Listed in another spelling than the contact's: the keys are normalised.
    engine.suppress("ANA@xn--exmple-cua.test", "hard_bounce", source="webhook:postmark")
    for cid in ("c4", "c1"):
        queue(engine, cid, "email")
    report = engine.dispatch()
    assert report.skipped == {"suppression": 1} and sent_to(engine, "email") == ["c1"]
    status, reason = statuses(engine)["email-c4-0"]
    assert status == OutboxStatus.SKIPPED
    assert reason is not None and reason.startswith("suppression: ana@xn--exmple-cua.test")
    assert "hard_bounce, from webhook:postmark" in reason
    frozen_clock.advance(timedelta(days=2))
    assert engine.dispatch().claimed == 0
    assert engine.store.deliveries() != [] and all(
        d.contact_id != "c4" for d in engine.store.deliveries()
    )


def test_a_suppressed_phone_stops_sms_and_only_the_person_reasons_stop_in_app(engine):
    engine.suppress("+55 (11) 91234-5678", Reason.COMPLAINT)
    queue(engine, "c4", "sms")
    queue(engine, "c4", "email")
    queue(engine, "c4", "inapp")
    report = engine.dispatch()
    assert report.skipped == {"suppression": 1}
    assert statuses(engine)["sms-c4-0"][0] == OutboxStatus.SKIPPED
    # A complaint about the number is not about the person: email and in-app go.
    assert sent_to(engine, "email") == ["c4"] and sent_to(engine, "inapp") == ["c4"]

    engine.suppress("ana@exämple.test", "legal", note="erasure request 2026-001")
    queue(engine, "c4", "inapp", 1)
    assert engine.dispatch().skipped == {"suppression": 1}
    assert "legal" in (statuses(engine)["inapp-c4-1"][1] or "")


def test_unsuppress_lets_later_sends_through_and_the_list_round_trips_as_csv(engine):
    engine.suppress("nancy@northwind.test", "manual")
    engine.suppress("+5511912345678", "legal", note="a note, with a comma")
    csv_text = engine.export_suppressions()
    assert csv_text.splitlines()[0] == "address,reason,source,at,note"
    assert engine.unsuppress("Nancy@Northwind.test") is True
    assert engine.unsuppress("nancy@northwind.test") is False
    queue(engine, "c1", "email")
    assert engine.dispatch().sent == 1
    # What was exported comes back as it was.
    assert engine.import_suppressions(csv_text) == 2
    assert engine.export_suppressions() == csv_text


def test_a_bad_import_changes_nothing_already_listed(engine):
    engine.suppress("nancy@northwind.test", "manual")
    before = engine.export_suppressions()
    with pytest.raises(InputError, match="line 3"):
        engine.import_suppressions("address,reason\nok@x.test,legal\nnot-an-address,legal\n")
    assert engine.export_suppressions() == before


def test_the_cli_imports_and_exports(tmp_path):
    folder = tmp_path / "prog"
    folder.mkdir()
    (folder / "program.toml").write_text(
        '[program]\nname = "acme"\nstore = "acme.db"\n\n'
        '[channels.email]\nplugin = "outbox"\nfolder = "out"\n'
    )
    source = tmp_path / "list.csv"
    source.write_text("address,reason\nNancy@Northwind.test,complaint\n+14155552671,legal\n")
    runner = CliRunner()
    result = runner.invoke(app, ["suppressions", "import", str(folder), str(source)])
    assert result.exit_code == 0, result.output
    assert "imported 2 entries" in result.output
    result = runner.invoke(app, ["suppressions", "export", str(folder)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "address,reason,source,at,note"
    assert lines[1].startswith("+14155552671,legal,import:list.csv,")
    assert lines[2].startswith("nancy@northwind.test,complaint,import:list.csv,")
    result = runner.invoke(app, ["suppressions", "remove", str(folder), "+1 415 555 2671"])
    assert "removed" in result.output
