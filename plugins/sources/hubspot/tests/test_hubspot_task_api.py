"""The hubspot_task channel against the fake HubSpot: the task it files, and what each of
HubSpot's answers means."""

from __future__ import annotations

import pytest

from onetomany.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from onetomany_hubspot.testing import TOKEN


def test_a_task_is_filed_on_the_company_for_the_owner(hubspot, make_channel, make_message):
    message = make_message()
    with make_channel(due_in_days=3) as channel:
        result = channel.send(message)
    [task] = hubspot.tasks
    assert result.provider_message_id == task["id"]
    props = task["properties"]
    owner = hubspot.owners[0]["id"]
    assert props["hubspot_owner_id"] == owner
    assert props["hs_task_subject"] == "Call Northwind's admin"
    assert props["hs_timestamp"] == "2026-03-10T09:00:00.000Z"  # queued 7 March + 3 days
    assert (props["hs_task_status"], props["hs_task_priority"], props["hs_task_type"]) == (
        "NOT_STARTED",
        "HIGH",
        "CALL",
    )
    assert "'welcome' was not opened within 3 days" in props["hs_task_body"]
    assert "Bo Li, admin, bo@northwind.test" in props["hs_task_body"]
    assert "- welcome by email" in props["hs_task_body"]
    assert task["associations"] == [
        {
            "to": {"id": message.account_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}],
        }
    ]


def test_the_owner_and_company_lookups_are_kept(hubspot, make_channel, make_message):
    hubspot.company(name="Globex", account_id="acct-9")
    with make_channel(account_property="account_id") as channel:
        for _ in range(3):
            channel.send(make_message(account_id="acct-9"))
    paths = [path for _, path, _ in hubspot.requests]
    assert paths.count("/crm/v3/owners") == 1
    assert paths.count("/crm/v3/objects/companies/search") == 1
    assert paths.count("/crm/v3/objects/tasks") == 3


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"to": "nobody@vendor.test"}, "no HubSpot owner has the email 'nobody@vendor.test'"),
        ({"account_id": "acct-1", "data": {}}, "is not a HubSpot company id"),
    ],
)
def test_an_unknown_owner_or_company_is_permanent(make_channel, make_message, change, reason):
    with make_channel() as channel, pytest.raises(PermanentDeliveryError, match=reason):
        channel.send(make_message(**change))


def test_a_rate_limit_is_transient_and_waits_for_hubspots_window(
    hubspot, make_channel, make_message
):
    hubspot.script("transient")
    with make_channel() as channel, pytest.raises(TransientDeliveryError) as caught:
        channel.send(make_message())
    assert caught.value.retry_after == 10.0


def test_a_missing_scope_is_permanent_and_named(hubspot, make_channel, make_message):
    hubspot.missing_scopes.add("crm.objects.contacts.write")
    with make_channel() as channel, pytest.raises(PermanentDeliveryError) as caught:
        channel.send(make_message())
    assert "lacks the scope crm.objects.contacts.write" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_bad_options_name_their_key(make_channel, monkeypatch):
    monkeypatch.delenv("HUBSPOT_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="priority"):
        make_channel(priority="URGENT")
    with pytest.raises(ConfigError, match="HUBSPOT_TOKEN") as caught:
        make_channel(token="")
    assert caught.value.key == "channels.csm.token_env"
