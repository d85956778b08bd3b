"""onetomany-smtp: an SMTP email channel for onetomany, registered as ``smtp``.

Installed, it is found through the ``onetomany`` entry point group; a program uses it with
``[channels.email] plugin = "smtp"``. The options are described in :mod:`onetomany_smtp.channel`.
"""

from __future__ import annotations

from onetomany.delivery.channels import Channel
from onetomany.plugins.hookspecs import hookimpl
from onetomany.plugins.registry import Register
from onetomany_smtp.channel import SmtpChannel, SmtpOptions

__all__ = ["SmtpChannel", "SmtpOptions", "onetomany_register_channels"]


@hookimpl
def onetomany_register_channels(register: Register[type[Channel]]) -> None:
    register("smtp", SmtpChannel)
