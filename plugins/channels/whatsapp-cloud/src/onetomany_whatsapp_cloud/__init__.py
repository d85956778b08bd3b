"""onetomany-whatsapp-cloud: WhatsApp through Meta's Cloud API, registered as
``whatsapp_cloud``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.whatsapp] plugin = "whatsapp_cloud"``. The options are those of
:class:`~onetomany_whatsapp_cloud.channel.WhatsAppCloudOptions`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_whatsapp_cloud.channel import WhatsAppCloudChannel, WhatsAppCloudOptions

__all__ = ["WhatsAppCloudChannel", "WhatsAppCloudOptions", "onetomany_register_channels"]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("whatsapp_cloud", WhatsAppCloudChannel)
