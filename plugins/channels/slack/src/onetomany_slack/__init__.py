"""onetomany-slack: CSM tasks as Slack messages, registered as ``slack``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.csm] plugin = "slack"``. The options are those of
:class:`~onetomany_slack.channel.SlackOptions`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_slack.channel import SlackChannel, SlackOptions

__all__ = ["SlackChannel", "SlackOptions", "onetomany_register_channels"]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("slack", SlackChannel)
