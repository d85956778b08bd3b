"""onetomany-twilio: SMS and WhatsApp through Twilio's Messages API, registered as ``twilio``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.sms] plugin = "twilio"`` (``kind = "whatsapp"`` for WhatsApp). The options are
those of :class:`~onetomany_twilio.channel.TwilioOptions`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_twilio.channel import TwilioChannel, TwilioOptions, e164, key_from_callback

__all__ = [
    "TwilioChannel",
    "TwilioOptions",
    "e164",
    "key_from_callback",
    "onetomany_register_channels",
]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("twilio", TwilioChannel)
