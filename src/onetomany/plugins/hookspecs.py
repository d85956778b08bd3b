"""The hooks a onetomany plugin can implement.

Every hook is called with keyword arguments. Registration hooks receive a ``register``
callable bound to the implementing plugin; the core checks what is registered. A plugin
module implements hooks with :data:`hookimpl`::

    from onetomany import hookimpl

    @hookimpl
    def onetomany_register_channels(register):
        register("smtp", SmtpChannel)

The reference with every signature is in docs/plugins/hooks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from onetomany.delivery.channels import Channel
    from onetomany.delivery.webhooks import WebhookParser
    from onetomany.model import Delivery
    from onetomany.plugins.registry import Register
    from onetomany.plugins.sources import Source

PROJECT = "onetomany"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration: called when a program's plugins are resolved ------------------------------


@hookspec
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    """Register channel classes: ``register(name, ChannelSubclass)``.

    :param register: call it once per channel type the plugin provides; ``name`` is what a
        program's ``[channels.X] plugin = "name"`` refers to.

    .. versionadded:: 0.1
    """


@hookspec
def onetomany_register_sources(register: Register[type[Source]]) -> None:
    """Register source classes: ``register(name, SourceSubclass)``.

    :param register: call it once per source type the plugin provides; ``name`` is what a
        program's ``[sources.X] plugin = "name"`` refers to.

    .. versionadded:: 0.1
    """


@hookspec
def onetomany_register_template_filters(register: Register[Callable[..., Any]]) -> None:
    """Register Jinja filters available in every template: ``register(name, function)``.

    :param register: call it once per filter; the function receives the filtered value
        first, like any Jinja filter.

    .. versionadded:: 0.1
    """


@hookspec
def onetomany_register_webhook_parsers(register: Register[WebhookParser]) -> None:
    """Register the parsers of providers' event webhooks: ``register(name, parser)``, where
    ``name`` is the channel plugin's name (``postmark``).

    :param register: call it once per channel plugin whose provider calls back; the web app
        answers ``POST /webhooks/<channel>`` for each program channel using that plugin with
        ``parser(channel, request) -> [ProviderEvent, ...]``
        (:mod:`onetomany.delivery.webhooks`).

    .. versionadded:: 0.2
    """


# -- delivery: called by the dispatcher ------------------------------------------------------


@hookspec
def onetomany_delivery_recorded(delivery: Delivery) -> None:
    """Observe every delivery attempt right after the dispatcher records it.

    :param delivery: the attempt: outbox row, idempotency key, channel, attempt number,
        status (``sent``, ``retrying``, ``dead`` or ``unknown``), provider id or error.

    Exceptions raised here are logged and never affect delivery.

    .. versionadded:: 0.1
    """
