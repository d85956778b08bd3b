"""onetomany-sendgrid: a SendGrid email channel for onetomany, registered as ``sendgrid``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.email] plugin = "sendgrid"``. The options are those of
:class:`~onetomany_sendgrid.channel.SendGridOptions`; the signed Event Webhook is read by
:func:`~onetomany_sendgrid.webhooks.parse_webhook`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import WebhookParser
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_sendgrid.channel import SendGridChannel, SendGridOptions
from onetomany_sendgrid.webhooks import parse_webhook

__all__ = [
    "SendGridChannel",
    "SendGridOptions",
    "onetomany_register_channels",
    "onetomany_register_webhook_parsers",
    "parse_webhook",
]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("sendgrid", SendGridChannel)


@hookimpl
def onetomany_register_webhook_parsers(register: Register[WebhookParser]) -> None:
    register("sendgrid", parse_webhook)
