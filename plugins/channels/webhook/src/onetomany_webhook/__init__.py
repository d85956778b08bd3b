"""onetomany-webhook: signed webhooks (Standard Webhooks) behind an SSRF guard, registered as
``webhook``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.alerts] plugin = "webhook"``. The options are those of
:class:`~onetomany_webhook.channel.WebhookOptions`; receivers check what arrives with
:func:`~onetomany_webhook.signing.verify`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_webhook.channel import WebhookChannel, WebhookOptions, webhook_id
from onetomany_webhook.signing import SignatureError, verify

__all__ = [
    "SignatureError",
    "WebhookChannel",
    "WebhookOptions",
    "onetomany_register_channels",
    "verify",
    "webhook_id",
]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("webhook", WebhookChannel)
