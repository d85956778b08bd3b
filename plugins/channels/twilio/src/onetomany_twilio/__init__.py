"""onetomany-twilio: SMS and WhatsApp through Twilio's Messages API, registered as ``twilio``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.sms] plugin = "twilio"`` (``kind = "whatsapp"`` for WhatsApp). The options are
those of :class:`~onetomany_twilio.channel.TwilioOptions`. Twilio's status callbacks come back
through the web app's ``/webhooks/<channel>`` (:func:`~onetomany_twilio.webhooks.parse_webhook`).
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import WebhookParser
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_twilio.channel import TwilioChannel, TwilioOptions, e164, key_from_callback
from onetomany_twilio.webhooks import parse_webhook

__all__ = [
    "TwilioChannel",
    "TwilioOptions",
    "e164",
    "key_from_callback",
    "onetomany_register_channels",
    "onetomany_register_webhook_parsers",
    "parse_webhook",
]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("twilio", TwilioChannel)


@hookimpl
def onetomany_register_webhook_parsers(register: Register[WebhookParser]) -> None:
    register("twilio", parse_webhook)
