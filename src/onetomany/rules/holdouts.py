"""Holdouts: a stable share of recipients kept out of a touch, to measure what it changes.

``holdout = 0.1`` on a touch (or in ``[program]``, for every touch that declares none) puts a
tenth of its recipients in a control group: they get a ``holdout`` decision instead of the
message, and the goal's rate among them is what the touch's rate is compared with.

Membership is a pure function of the recipient's id (the contact's, or its account's with
``holdout_by = "account"``) and a salt, so it never changes between rounds, workers or
restarts, and needs no state: the first 8 bytes of SHA-256 over ``salt:id``, read as a number
in [0, 1), fall below the share or not. The salt is ``holdout_salt`` when declared, else the
program's and touch's names (the program's name alone for a program-wide holdout, so one
control group is kept out of every touch). Changing the salt or the share starts a new
experiment; nothing else does.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import attrs

#: Who is held out together: one contact, or every contact of an account.
HOLDOUT_BY = ("contact", "account")
_KEYS = ("holdout", "holdout_by", "holdout_salt")


class Reporter(Protocol):
    def error(self, key: str, reason: str) -> None: ...


def _share(_instance: object, _attribute: object, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"a holdout share is between 0 and 1 (exclusive), got {value!r}")


@attrs.frozen(kw_only=True)
class Holdout:
    """A control group: ``share`` of the recipients, drawn by ``by`` with ``salt``."""

    share: float = attrs.field(validator=_share)
    by: str = attrs.field(default="contact", validator=attrs.validators.in_(HOLDOUT_BY))
    #: Empty: derived from the program's (and touch's) name by :meth:`salted`.
    salt: str = ""

    def salted(self, program: str, touch: str | None) -> Holdout:
        """This holdout with its salt set: the declared one, else ``program`` (a
        program-wide holdout, ``touch`` None) or ``program/touch``."""
        if self.salt:
            return self
        return attrs.evolve(self, salt=program if touch is None else f"{program}/{touch}")

    def unit(self, contact_id: str, account_id: str | None) -> str:
        """The id the draw is made on for this recipient."""
        return account_id if self.by == "account" and account_id else contact_id

    def holds_out(self, contact_id: str, account_id: str | None) -> bool:
        """Whether this recipient is in the control group."""
        return draw(self.salt, self.unit(contact_id, account_id)) < self.share

    def describe(self) -> str:
        return f"{self.share:.0%} of {self.by}s held out (salt {self.salt!r})"

    def as_dict(self) -> dict[str, object]:
        return {"share": self.share, "by": self.by, "salt": self.salt}


def draw(salt: str, unit: str) -> float:
    """A number in [0, 1) that depends only on ``salt`` and ``unit``, spread uniformly."""
    digest = hashlib.sha256(f"{salt}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def holdout_keys(body: object) -> bool:
    """Whether a touch's or the program's table declares a holdout."""
    return isinstance(body, dict) and any(key in body for key in _KEYS)


def read_holdout(body: dict[str, object], path: str, reporter: Reporter) -> Holdout | None:
    """The holdout ``holdout``, ``holdout_by`` and ``holdout_salt`` declare in the table at
    ``path`` (a touch or ``program``), or None after reporting what is wrong (or when the
    table declares none)."""
    if not holdout_keys(body):
        return None
    share = body.get("holdout")
    if share is None:
        reporter.error(f"{path}.holdout", "holdout_by or holdout_salt needs a holdout share")
        return None
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
        reporter.error(
            f"{path}.holdout",
            f"expected a share between 0 and 1 such as 0.1 (a tenth held out), got {share!r}",
        )
        return None
    by = body.get("holdout_by", "contact")
    if by not in HOLDOUT_BY:
        reporter.error(f"{path}.holdout_by", f"expected contact or account, got {by!r}")
        return None
    salt = body.get("holdout_salt", "")
    if not isinstance(salt, str):
        reporter.error(f"{path}.holdout_salt", f"expected a string, got {salt!r}")
        return None
    return Holdout(share=float(share), by=str(by), salt=salt)
