"""onetomany-postmark: a Postmark email channel for onetomany, registered as ``postmark``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.email] plugin = "postmark"``. The options are those of
:class:`~onetomany_postmark.channel.PostmarkOptions`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.delivery.webhooks import WebhookParser
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_postmark.channel import PostmarkChannel, PostmarkOptions
from onetomany_postmark.webhooks import parse_webhook
from onetomany_postmark.wire import key_from_metadata

__all__ = [
    "PostmarkChannel",
    "PostmarkOptions",
    "key_from_metadata",
    "onetomany_register_channels",
    "onetomany_register_webhook_parsers",
    "parse_webhook",
]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("postmark", PostmarkChannel)


@hookimpl
def onetomany_register_webhook_parsers(register: Register[WebhookParser]) -> None:
    register("postmark", parse_webhook)
