"""onetomany-stripe: a onetomany source that reads billing from Stripe: customers as accounts,
subscriptions as plan, seats and MRR, overdue invoices, and billing events.

Installing the distribution registers the ``stripe`` source type, which a program uses with
``[sources.NAME] plugin = "stripe"``.
"""

from __future__ import annotations

from onetomany import hookimpl
from onetomany.plugins.registry import Register
from onetomany.plugins.sources import Source
from onetomany_stripe.source import StripeSource

__all__ = ["StripeSource", "onetomany_register_sources"]


@hookimpl
def onetomany_register_sources(register: Register[type[Source]]) -> None:
    register("stripe", StripeSource)
