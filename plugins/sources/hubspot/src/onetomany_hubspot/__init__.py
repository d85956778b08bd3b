"""onetomany-hubspot: HubSpot CRM as a onetomany source (``hubspot``) and CSM tasks filed in
HubSpot as a channel (``hubspot_task``, registered by :mod:`onetomany_hubspot.tasks`).

A program uses them with ``[sources.NAME] plugin = "hubspot"`` and
``[channels.NAME] plugin = "hubspot_task"``.
"""

from __future__ import annotations

from onetomany import hookimpl
from onetomany.plugins.registry import Register
from onetomany.plugins.sources import Source
from onetomany_hubspot.source import HubSpotSource

__all__ = ["HubSpotSource", "onetomany_register_sources"]


@hookimpl
def onetomany_register_sources(register: Register[type[Source]]) -> None:
    register("hubspot", HubSpotSource)
