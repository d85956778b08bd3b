"""How many SMS segments a text takes, and in which encoding.

An SMS carries 140 bytes. Text made only of characters of the GSM 03.38 default alphabet is
sent in GSM-7 (7 bits a character): 160 characters in a single message, 153 per part once it
is split (the rest of each part holds the concatenation header). Characters of the alphabet's
extension table (``{ } [ ] ~ \\ ^ | €`` and the form feed) take an escape character plus
themselves, so they count twice. A single character outside both tables switches the whole
message to UCS-2 (16 bits a character): 70 characters single, 67 per part; characters outside
the Basic Multilingual Plane (most emoji) take two UTF-16 code units each.

A GSM-7 part never ends between an escape and its character (carriers do not split one), so
a long text made of extended characters can need one more part than ``ceil(units / 153)``; the
same holds for UTF-16 surrogate pairs in UCS-2.
"""

from __future__ import annotations

import attrs

__all__ = ["GSM7", "UCS2", "SmsCount", "count_segments", "encoding_of"]

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# The GSM 03.38 default alphabet (basic table) ...
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# ... and its extension table: each costs an escape character too.
_EXTENDED = frozenset("\f^{}\\[~]|€")

_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@attrs.frozen
class SmsCount:
    """The encoding a text needs, its length in that encoding's units, and its segments."""

    encoding: str
    units: int
    segments: int


def encoding_of(text: str) -> str:
    """``"GSM-7"`` when every character is in the GSM default alphabet or its extension,
    else ``"UCS-2"``."""
    for char in text:
        if char not in _BASIC and char not in _EXTENDED:
            return UCS2
    return GSM7


def count_segments(text: str) -> SmsCount:
    """The encoding, length in units (septets or UTF-16 code units) and number of segments of
    ``text``. An empty text is one (empty) segment."""
    encoding = encoding_of(text)
    if encoding == GSM7:
        sizes = [2 if char in _EXTENDED else 1 for char in text]
    else:
        sizes = [2 if ord(char) > 0xFFFF else 1 for char in text]
    units = sum(sizes)
    single, part = _LIMITS[encoding]
    if units <= single:
        return SmsCount(encoding, units, 1)
    # Fill parts greedily without splitting a character's units across two parts.
    segments, used = 1, 0
    for size in sizes:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return SmsCount(encoding, units, segments)
