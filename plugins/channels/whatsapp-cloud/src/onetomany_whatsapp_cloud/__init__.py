"""onetomany-whatsapp-cloud: WhatsApp through Meta's Cloud API, registered as
``whatsapp_cloud``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.whatsapp] plugin = "whatsapp_cloud"``. The options are those of
:class:`~onetomany_whatsapp_cloud.channel.WhatsAppCloudOptions`. Meta's webhooks (statuses,
inbound messages, the verification handshake) come back through the web app's
``/webhooks/<channel>`` (:func:`~onetomany_whatsapp_cloud.webhooks.parse_webhook`).
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import WebhookParser
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_whatsapp_cloud.channel import WhatsAppCloudChannel, WhatsAppCloudOptions
from onetomany_whatsapp_cloud.webhooks import parse_webhook

__all__ = [
    "WhatsAppCloudChannel",
    "WhatsAppCloudOptions",
    "onetomany_register_channels",
    "onetomany_register_webhook_parsers",
    "parse_webhook",
]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("whatsapp_cloud", WhatsAppCloudChannel)


@hookimpl
def onetomany_register_webhook_parsers(register: Register[WebhookParser]) -> None:
    register("whatsapp_cloud", parse_webhook)
