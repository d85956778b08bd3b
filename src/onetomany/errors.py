"""Every error onetomany raises, in one hierarchy.

::

    OnetomanyError
     ├── ConfigError                 a program or setting is wrong (names file, key, reason)
     ├── InputError                  data handed to the engine is wrong (names what and where)
     │    ├── InvalidAccountError     an account's id, name or traits cannot be stored
     │    ├── InvalidContactError     a contact's email, phone or timezone does not parse
     │    ├── InvalidEventError       an event without a name, timezone or subject
     │    └── SourceDataError         rows a source could not read (file, line, column, reason)
     ├── PluginError                 a plugin misbehaves (names plugin and distribution)
     │    ├── PluginImportError       an entry point failed to import
     │    └── RegistrationError       a duplicate name or a wrong type was registered
     ├── TemplateError               a template cannot be compiled or rendered (names template)
     │    ├── MissingVariableError    a variable the template uses is not in the context
     │    └── TemplateSecurityError   the template tried to escape the sandbox
     ├── StoreError                  the store cannot be opened, migrated, written or read
     └── DeliveryError               a channel could not deliver one message
          ├── TransientDeliveryError  worth retrying (timeouts, 4xx SMTP, 429/5xx HTTP)
          ├── UnknownOutcomeError     sent, but no answer came back: it may have arrived
          ├── DeliveryDeferred        not sent: a rate limit has no token yet (not an attempt)
          └── PermanentDeliveryError  never retried: the row is dead-lettered with the reason

Channel plugins raise the two delivery errors and never return a bare failure flag; the
dispatcher alone decides what a retry is. Foreign exceptions are wrapped with ``raise ... from
exc`` so the original stays on ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


class OnetomanyError(Exception):
    """Base class of every error onetomany raises on purpose."""


class ConfigError(OnetomanyError):
    """A program definition or setting is wrong.

    ``file`` and ``key`` locate the problem; ``reason`` says what is wrong with it.
    """

    def __init__(self, reason: str, *, file: str | None = None, key: str | None = None) -> None:
        self.reason = reason
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class ConfigErrors(ConfigError):
    """Several configuration problems found at once, reported together."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  - {error}" for error in self.errors)
        OnetomanyError.__init__(self, f"{len(self.errors)} problem(s) found:\n{lines}")
        self.reason = str(self)
        self.file = None
        self.key = None


class InputError(OnetomanyError):
    """Data handed to the engine (a contact, an event, a source row) is wrong."""


class InvalidAccountError(InputError):
    """An account's id, name or traits cannot be stored (empty id, NUL, non-JSON trait)."""

    def __init__(self, account_id: str, field: str, value: object, reason: str) -> None:
        self.account_id = account_id
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"account {account_id!r}: {field} {value!r} is not valid: {reason}")


class InvalidContactError(InputError):
    """A contact's email address, phone number, timezone, text or traits is not valid."""

    def __init__(self, contact_id: str, field: str, value: object, reason: str) -> None:
        self.contact_id = contact_id
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"contact {contact_id!r}: {field} {value!r} is not valid: {reason}")


class InvalidEventError(InputError):
    """An event is missing what the engine needs to act on it."""


class SourceRow:
    """Where one bad record lives in a source: file, line and column."""

    __slots__ = ("column", "file", "line", "reason")

    def __init__(self, file: str, line: int, column: str | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason

    def __str__(self) -> str:
        column = f", column {self.column!r}" if self.column else ""
        return f"{self.file}:{self.line}{column}: {self.reason}"

    def __repr__(self) -> str:
        return f"SourceRow({self})"


class SourceDataError(InputError):
    """A source found rows it cannot read; ``rows`` lists each with file, line and column."""

    def __init__(self, source: str, rows: Sequence[SourceRow]) -> None:
        self.source = source
        self.rows = list(rows)
        listing = "\n".join(f"  - {row}" for row in self.rows)
        super().__init__(
            f"source {source!r}: {len(self.rows)} bad row(s), nothing imported:\n{listing}"
        )


class PluginError(OnetomanyError):
    """A plugin misbehaves; ``plugin`` and ``distribution`` name the culprit."""

    def __init__(self, message: str, *, plugin: str, distribution: str | None = None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        super().__init__(message)


class PluginImportError(PluginError):
    """An entry point in group ``onetomany`` raised while it was imported."""


class RegistrationError(PluginError):
    """A plugin registered a duplicate name or an object of the wrong type."""


class TemplateError(OnetomanyError):
    """A template cannot be loaded, compiled or rendered.

    ``template`` names the template file; ``line`` points into it when known.
    """

    def __init__(self, message: str, *, template: str, line: int | None = None) -> None:
        self.template = template
        self.line = line
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {message}")


class MissingVariableError(TemplateError):
    """The template uses a variable that the render context does not have."""

    def __init__(self, variable: str, *, template: str, line: int | None = None) -> None:
        self.variable = variable
        super().__init__(f"undefined variable {variable!r}", template=template, line=line)


class TemplateSecurityError(TemplateError):
    """The template reached for something the sandbox forbids."""


class StoreError(OnetomanyError):
    """The store cannot be opened, migrated, written or read."""


class DeliveryError(OnetomanyError):
    """A channel could not deliver one message."""

    #: The provider that answered, set by a failover group (None: the channel itself).
    provider: str | None = None


class TransientDeliveryError(DeliveryError):
    """Delivery failed for a reason that may pass; the dispatcher retries.

    ``retry_after`` (seconds) carries a provider's own hint, such as an HTTP ``Retry-After``
    header; the dispatcher never retries sooner than that.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class UnknownOutcomeError(DeliveryError):
    """The request went out and no answer came back (a read timeout, a connection lost while
    waiting for the reply): the provider may have accepted the message.

    Not a :class:`TransientDeliveryError`: sending again may deliver a second copy. The
    dispatcher records the outcome as ``unknown`` and sends again only when the channel's
    provider drops a repeated idempotency key or the touch says a copy is better than none.
    ``retry_after`` is the wait before such a retry, as for a transient error.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class DeliveryDeferred(DeliveryError):
    """Nothing was sent: the channel's rate limit has no token for this message before
    ``until``. The dispatcher puts the row back to pending until then, without counting an
    attempt, so a busy limit delays rows and never dead-letters them."""

    def __init__(self, message: str, *, until: datetime) -> None:
        self.until = until
        super().__init__(message)


class PermanentDeliveryError(DeliveryError):
    """Delivery failed for a reason that will not pass; the message is dead-lettered."""
