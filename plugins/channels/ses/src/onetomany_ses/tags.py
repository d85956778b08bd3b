"""The outbox key as an SES message tag, and back.

SES allows tag values of at most 256 characters, each an ASCII letter, a digit, ``_``, ``-``
(and ``.``, ``@`` in practice, which we do not rely on). An outbox key holds ``:`` and may hold
anything, so the value keeps letters, digits and ``-`` and writes every other byte of the
key's UTF-8 as ``_`` and two hex digits (``:`` is ``_3A``, ``_`` itself ``_5F``): readable in
SES's console, and read back exactly by :func:`key_from_tag`.
"""

from __future__ import annotations

import re
import string

from onetomany.errors import PermanentDeliveryError

#: The tag's name on every message the channel sends.
KEY_TAG = "onetomany_key"
#: SES's limit on a tag value.
MAX_TAG_VALUE = 256

_KEPT = frozenset((string.ascii_letters + string.digits + "-").encode())
_VALUE = re.compile(r"(?:[A-Za-z0-9-]|_[0-9A-F]{2})*")


def tag_value(key: str, *, doing: str = "") -> str:
    """``key`` written as an SES tag value; PermanentDeliveryError when it is too long."""
    value = "".join(chr(b) if b in _KEPT else f"_{b:02X}" for b in key.encode())
    if len(value) > MAX_TAG_VALUE:
        raise PermanentDeliveryError(
            f"{doing}: the outbox key written as an SES tag takes {len(value)} characters, "
            f"more than SES's {MAX_TAG_VALUE}"
        )
    return value


def key_from_tag(value: str) -> str | None:
    """The outbox key a tag value holds, or None when the value is not one we wrote."""
    if not _VALUE.fullmatch(value):
        return None
    raw = bytearray()
    index = 0
    while index < len(value):
        if value[index] == "_":
            raw.append(int(value[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.append(ord(value[index]))
            index += 1
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
