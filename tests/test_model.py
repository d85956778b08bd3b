from datetime import UTC, datetime, timezone

import attrs
import pytest

from onetomany import Contact, Event
from onetomany.errors import InvalidContactError, InvalidEventError


def test_contact_normalises_email_and_phone():
    contact = Contact(id="c1", email="Ana@Example.COM", phone="+55 11 91234-5678")
    assert contact.email == "Ana@example.com"
    assert contact.phone == "+5511912345678"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("email", "ana@", "email 'ana@'"),
        ("email", "not an address", "email 'not an address'"),
        ("phone", "12345", "phone '12345'"),
        ("phone", "+1 555", "phone '+1 555'"),
        ("timezone", "Mars/Olympus", "timezone 'Mars/Olympus'"),
    ],
)
def test_invalid_contact_fields_name_the_contact_and_field(field, value, fragment):
    with pytest.raises(InvalidContactError) as info:
        Contact(id="c-77", **{field: value})
    assert info.value.contact_id == "c-77"
    assert info.value.field == field
    assert "contact 'c-77'" in str(info.value)
    assert fragment in str(info.value)


def test_blank_email_means_no_email():
    assert Contact(id="c1", email="  ").email is None


def test_consent_defaults_to_allowed_and_respects_a_no():
    contact = Contact(id="c1", consent={"sms": False})
    assert contact.allows("email")
    assert not contact.allows("sms")


def test_event_refuses_a_naive_timestamp():
    with pytest.raises(InvalidEventError, match="no timezone"):
        Event(name="login", occurred_at=datetime(2026, 1, 1, 9, 0), account_id="a1")


def test_event_needs_a_subject_and_a_name():
    now = datetime.now(UTC)
    with pytest.raises(InvalidEventError, match="neither an account nor a contact"):
        Event(name="login", occurred_at=now)
    with pytest.raises(InvalidEventError, match="name is empty"):
        Event(name=" ", occurred_at=now, account_id="a1")


def test_event_time_is_kept_in_utc():
    from datetime import timedelta

    local = datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3)))
    event = Event(name="login", occurred_at=local, account_id="a1")
    assert event.occurred_at == local
    assert event.occurred_at.tzinfo == UTC


def test_a_contact_restored_from_its_stored_fields_equals_the_checked_one():
    checked = Contact(
        id="c1",
        account_id="a1",
        name="Ana Souza",
        email="Ana@ACME.test",
        phone="+55 11 91234-5678",
        role="admin",
        locale="pt-BR",
        timezone="America/Sao_Paulo",
        consent={"sms": False},
        traits={"seats": 3},
    )
    fields = {f.name: getattr(checked, f.name) for f in attrs.fields(Contact)}
    restored = Contact.restored(**fields)
    assert restored == checked
    assert (restored.email, restored.phone) == ("Ana@acme.test", "+5511912345678")
    assert restored.consent is not checked.consent  # its own copy, as construction makes
