"""The WhatsApp Cloud API channel against the local fake of Meta's documented API: templates
with parameters, session text, and each documented error code."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest
from conftest import TOKEN, MakeChannel, MakeMessage

import onetomany_whatsapp_cloud
from onetomany.errors import (
    ConfigError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from onetomany.model import DeliveryResult
from onetomany.plugins.settings import PluginSettings
from onetomany.testing import make_plugins
from onetomany_whatsapp_cloud import WhatsAppCloudChannel
from onetomany_whatsapp_cloud.testing import PHONE_NUMBER_ID, FakeWhatsAppCloud


def test_an_approved_template_goes_with_its_parameters(
    cloud: FakeWhatsAppCloud, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    result = make_channel().send(make_message(to="+55 11 91234-0001"))

    [sent] = cloud.accepted
    assert result == DeliveryResult(provider_message_id=sent["id"], detail="accepted")
    assert sent["id"].startswith("wamid.")
    assert sent["to"] == "5511912340001"
    assert sent["type"] == "template"
    assert sent["template"] == {
        "name": "day_recap",
        "language": {"code": "pt_BR"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ana"},
                    {"type": "text", "text": "3 relatórios"},
                ],
            }
        ],
    }


def test_a_template_without_parameters_has_no_components(
    cloud: FakeWhatsAppCloud, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    data = {"whatsapp_template": "welcome", "whatsapp_language": "en_US"}
    make_channel().send(make_message(data=data))

    assert "components" not in cloud.accepted[0]["template"]


def test_session_text_goes_as_a_text_message(
    cloud: FakeWhatsAppCloud, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    make_channel().send(make_message(data={}, text="  Thanks, Ana! Your report is ready.\n"))

    assert cloud.accepted[0]["type"] == "text"
    assert cloud.accepted[0]["text"] == {
        "preview_url": False,
        "body": "Thanks, Ana! Your report is ready.",
    }


def test_session_text_outside_the_24_hour_window_is_permanent_for_the_row(
    cloud: FakeWhatsAppCloud, make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    cloud.window_open = {"5511912340002"}
    channel = make_channel()

    inside = channel.send(make_message(data={}, text="hi", to="+5511912340002"))
    with pytest.raises(PermanentDeliveryError, match=r"error 131047.*24 hours"):
        channel.send(make_message(data={}, text="hi", to="+5511912340003"))

    assert isinstance(inside, DeliveryResult)


@pytest.mark.parametrize(
    ("prepare", "fields", "error", "text"),
    [
        (lambda f: f.script("transient"), {}, TransientDeliveryError, "error 130429"),
        (lambda f: f.script("pair_limit"), {}, TransientDeliveryError, "error 131056"),
        (lambda f: f.script("permanent"), {}, PermanentDeliveryError, "error 131026"),
        (lambda f: f.templates.pop("day_recap"), {}, PermanentDeliveryError, "error 132001"),
        (lambda f: f.templates.update(day_recap=3), {}, PermanentDeliveryError, "error 132000"),
        (lambda f: setattr(f, "token", "rotated"), {}, TransientDeliveryError, "error 190"),
        (lambda f: f.script("no_answer"), {}, UnknownOutcomeError, "may have accepted it"),
        (lambda f: None, {"data": {}, "text": ""}, PermanentDeliveryError, "neither a template"),
        (lambda f: None, {"to": "12"}, PermanentDeliveryError, "not a valid phone number"),
    ],
)
def test_documented_answers_map_to_their_errors(
    cloud: FakeWhatsAppCloud,
    make_channel: MakeChannel,
    make_message: MakeMessage,
    prepare: Any,
    fields: dict[str, Any],
    error: type[Exception],
    text: str,
) -> None:
    prepare(cloud)

    with pytest.raises(error, match=text) as caught:
        make_channel().send(make_message(**fields))

    assert type(caught.value) is error
    assert TOKEN not in str(caught.value)
    assert cloud.arrived <= 1


def test_a_wrong_phone_number_id_is_permanent(
    make_channel: MakeChannel, make_message: MakeMessage
) -> None:
    with pytest.raises(PermanentDeliveryError, match="error 100"):
        make_channel(phone_number_id="999").send(make_message())


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"access_token": "t"}, "phone_number_id"),
        ({"phone_number_id": "12ab", "access_token": "t"}, "phone_number_id"),
        ({"phone_number_id": PHONE_NUMBER_ID}, "access_token"),
        (
            {"phone_number_id": PHONE_NUMBER_ID, "access_token": "t", "api_version": "21"},
            "api_version",
        ),
        ({"phone_number_id": PHONE_NUMBER_ID, "access_token": "t", "kind": "sms"}, "kind"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(options: dict[str, Any], key: str) -> None:
    settings = PluginSettings(name="wa", plugin="whatsapp_cloud", options=options, origin="p.toml")

    with pytest.raises(ConfigError) as caught:
        WhatsAppCloudChannel(settings)

    problems = getattr(caught.value, "errors", [caught.value])
    assert f"channels.wa.{key}" in {problem.key for problem in problems}


def test_the_distribution_declares_its_entry_point() -> None:
    [entry_point] = entry_points(group="onetomany", name="whatsapp_cloud")

    assert entry_point.load() is onetomany_whatsapp_cloud
    assert entry_point.dist is not None
    assert entry_point.dist.name == "onetomany-whatsapp-cloud"
    plugins = make_plugins(("whatsapp_cloud", onetomany_whatsapp_cloud))
    assert plugins.channels().get("whatsapp_cloud").value is WhatsAppCloudChannel
