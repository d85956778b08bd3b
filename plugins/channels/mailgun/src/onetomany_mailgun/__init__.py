"""onetomany-mailgun: a Mailgun email channel for onetomany, registered as ``mailgun``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.email] plugin = "mailgun"``. The options are those of
:class:`~onetomany_mailgun.channel.MailgunOptions`; Mailgun's signed webhooks are read by
:func:`~onetomany_mailgun.webhooks.parse_webhook`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import WebhookParser
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_mailgun.channel import MailgunChannel, MailgunOptions
from onetomany_mailgun.webhooks import parse_webhook

__all__ = [
    "MailgunChannel",
    "MailgunOptions",
    "onetomany_register_channels",
    "onetomany_register_webhook_parsers",
    "parse_webhook",
]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("mailgun", MailgunChannel)


@hookimpl
def onetomany_register_webhook_parsers(register: Register[WebhookParser]) -> None:
    register("mailgun", parse_webhook)
