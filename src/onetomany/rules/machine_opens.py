"""Which opens a machine made: the open pixel fetched by a privacy proxy or a scanner rather
than shown to a person. Such an open is kept (``machine: true``, with the reason) and counted
apart (``machine_opened``), and it stops no ``not_opened`` ladder.

* Apple Mail Privacy Protection fetches every image of every message on delivery, through
  Apple's proxy, whose user agent is a bare ``Mozilla/5.0`` or a WebKit one naming no browser
  (``... AppleWebKit/605.1.15 (KHTML, like Gecko)``, no ``Safari/``);
* Gmail fetches images through ``GoogleImageProxy`` (``via ggpht.com``), Yahoo through
  ``YahooMailProxy``: the fetch is cached and says nothing dependable about a person;
* no user agent at all is a script;
* an open within :data:`TOO_SOON` of the send: no person reads that fast; a security scanner
  opening the message on arrival does.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

TOO_SOON = timedelta(seconds=10)

_PROXIES = re.compile(r"GoogleImageProxy|ggpht\.com|YahooMailProxy", re.IGNORECASE)
_BARE_WEBKIT = re.compile(r"^Mozilla/5\.0 \([^)]*\) AppleWebKit/[\d.]+ \(KHTML, like Gecko\)$")


def machine_open(user_agent: str, *, sent_at: datetime | None, opened_at: datetime) -> str | None:
    """Why this open is a machine's, or None when a person's."""
    agent = user_agent.strip()
    if not agent:
        return "no user agent"
    if _PROXIES.search(agent):
        return "image proxy"
    if agent == "Mozilla/5.0" or _BARE_WEBKIT.match(agent):
        return "Apple Mail Privacy Protection"
    if sent_at is not None and opened_at - sent_at < TOO_SOON:
        return f"opened within {TOO_SOON.seconds} seconds of the send"
    return None
