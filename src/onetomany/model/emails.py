"""Checking an email address's syntax: a precompiled fast path for the common shape, and
email-validator for everything else.

email-validator (offline: no DNS) costs about a tenth of a millisecond per address, as much as
the rest of storing a contact; a sync of a million contacts spent most of its time there. Most
addresses are plain ASCII (``first.last+tag@mail.example.com``), and for those its rules reduce
to a handful of checks a regular expression does in a microsecond. :func:`normalized_email`
accepts an address on the fast path only when every one of those rules plainly holds, and
returns it unchanged, as email-validator would; anything else (upper case in the domain,
Unicode, quoted local parts, Punycode or ``--`` labels, lengths near a limit, special-use
domains) goes to email-validator, which gives the verdict and the error message. A property
test holds the fast path to agreeing with email-validator on every address it accepts.
"""

from __future__ import annotations

import re
from typing import Final

from email_validator import SPECIAL_USE_DOMAIN_NAMES, validate_email

#: RFC 5322 ``atext``: what a dot-atom local part is made of.
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
#: A lower-case hostname label without ``--`` (which email-validator checks for Punycode
#: and reserved label forms): a letter or digit at each end, single hyphens inside.
_LABEL: Final = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_PLAIN: Final = re.compile(
    rf"(?P<local>{_ATEXT}+(?:\.{_ATEXT}+)*)@(?P<domain>(?:{_LABEL}\.)+(?P<tld>[a-z]{{2,63}}))"
)
#: Limits a fast-path address stays well inside (RFC 5321's 64 / 254, labels of 63).
_LOCAL_MAX: Final = 64
_ADDRESS_MAX: Final = 254
_LABEL_MAX: Final = 63
#: Special-use names (RFC 6761 and friends) that email-validator refuses; ``test`` is allowed,
#: as it is with ``test_environment=True``, for the examples and test suites.
_SPECIAL: Final = frozenset(d for d in SPECIAL_USE_DOMAIN_NAMES if d != "test")
_SPECIAL_SUFFIXES: Final = tuple(f".{d}" for d in sorted(_SPECIAL))


def plain_email(address: str) -> bool:
    """Whether ``address`` is a plain ASCII address that email-validator accepts unchanged
    (the fast path); ``False`` means "ask email-validator", not "invalid"."""
    match = _PLAIN.fullmatch(address)
    if match is None or len(address) > _ADDRESS_MAX or match.end("local") > _LOCAL_MAX:
        return False
    domain = match["domain"]
    # A special-use name is refused as the whole domain or as any suffix of it.
    if domain in _SPECIAL or domain.endswith(_SPECIAL_SUFFIXES):
        return False
    return len(domain) <= _LABEL_MAX or all(len(x) <= _LABEL_MAX for x in domain.split("."))


def normalized_email(address: str) -> str:
    """``address`` checked and normalised (domain lower-cased, Unicode NFC), offline.

    Raises :class:`email_validator.EmailNotValidError` with email-validator's reason when it
    is not a valid address. The reserved ``.test`` domain is accepted so examples and test
    suites can use addresses that can never reach anyone.
    """
    if plain_email(address):
        return address
    return validate_email(address, check_deliverability=False, test_environment=True).normalized
