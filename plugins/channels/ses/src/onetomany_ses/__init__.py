"""onetomany-ses: an Amazon SES v2 email channel for onetomany, registered as ``ses``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.email] plugin = "ses"``. The options are those of
:class:`~onetomany_ses.channel.SesOptions`; SES's events come back through Amazon SNS
(:func:`~onetomany_ses.webhooks.parse_webhook`).
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import WebhookParser
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_ses.channel import SesChannel, SesOptions
from onetomany_ses.tags import key_from_tag, tag_value
from onetomany_ses.webhooks import parse_webhook

__all__ = [
    "SesChannel",
    "SesOptions",
    "key_from_tag",
    "onetomany_register_channels",
    "onetomany_register_webhook_parsers",
    "parse_webhook",
    "tag_value",
]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("ses", SesChannel)


@hookimpl
def onetomany_register_webhook_parsers(register: Register[WebhookParser]) -> None:
    register("ses", parse_webhook)
