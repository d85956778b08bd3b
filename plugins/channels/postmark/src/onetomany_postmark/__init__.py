"""onetomany-postmark: a Postmark email channel for onetomany, registered as ``postmark``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.email] plugin = "postmark"``. The options are those of
:class:`~onetomany_postmark.channel.PostmarkOptions`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_postmark.channel import PostmarkChannel, PostmarkOptions
from onetomany_postmark.wire import key_from_metadata

__all__ = ["PostmarkChannel", "PostmarkOptions", "key_from_metadata", "onetomany_register_channels"]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("postmark", PostmarkChannel)
