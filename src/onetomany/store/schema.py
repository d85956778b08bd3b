"""The store's tables, in SQLAlchemy Core.

The migrations in ``migrations/versions`` create these tables; a test checks that the two agree.
Timestamps are stored in UTC and handed back timezone-aware (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, default=""),
    sa.Column("traits", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # An absence trigger's steady round reads only the profiles saved since its last one.
    sa.Index("ix_accounts_updated_at", "updated_at"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("account_id", sa.String(255), index=True),
    sa.Column("name", sa.String(255), nullable=False, default=""),
    sa.Column("email", sa.String(320)),
    # Inbound messages (a STOP by SMS) find their sender by phone.
    sa.Column("phone", sa.String(32), index=True),
    sa.Column("role", sa.String(64)),
    sa.Column("locale", sa.String(35), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("consent", sa.JSON, nullable=False),
    sa.Column("traits", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_contacts_updated_at", "updated_at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("account_id", sa.String(255)),
    sa.Column("contact_id", sa.String(255)),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    # The writing transaction on PostgreSQL (set by the database; 0 on SQLite, whose single
    # writer commits in seq order): the log is read in (txid, seq) order, see events_after.
    sa.Column("txid", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Index("ix_events_account_name_time", "account_id", "name", "occurred_at"),
    sa.Index("ix_events_txid_seq", "txid", "seq"),
    sa.Index("ix_events_contact_name_time", "contact_id", "name", "occurred_at"),
    # An absence trigger's steady round: whose latest event crossed the threshold since. By
    # time alone: led by the name, SQLite preferred it to ix_events_account_name_time for
    # "the latest login of these accounts" and read every login for each chunk of accounts.
    sa.Index("ix_events_time", "occurred_at"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(512), nullable=False, unique=True),
    sa.Column("program", sa.String(128), nullable=False),
    sa.Column("touch", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("template", sa.String(255), nullable=False),
    sa.Column("contact_id", sa.String(255)),
    sa.Column("account_id", sa.String(255)),
    sa.Column("event_id", sa.String(64)),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("available_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claim_token", sa.String(32)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Set when retention archived the row's payload and attempts (the row keeps its key).
    sa.Column("archived_at", UTCDateTime),
    sa.Index("ix_outbox_due", "status", "available_at"),
    # An engagement trigger's steady round: the sent rows of the contacts saved since.
    sa.Index("ix_outbox_touch_contact", "touch", "contact_id"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.Integer, nullable=False, index=True),
    sa.Column("idempotency_key", sa.String(512), nullable=False),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider_message_id", sa.String(512)),
    sa.Column("error", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("provider", sa.String(128)),
    # An engagement trigger's steady round: the rows whose send time crossed its days since.
    # The time alone: with the status first, SQLite chose it over ix_deliveries_outbox_id to
    # find a row's sent delivery, and read every sent delivery for each row.
    sa.Index("ix_deliveries_at", "at"),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("contact_id", sa.String(255), nullable=False, index=True),
    sa.Column("idempotency_key", sa.String(512), nullable=False, unique=True),
    sa.Column("touch", sa.String(128), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("read_at", UTCDateTime),
    # 0007: what the web inbox needs. A snoozed item is hidden until ``snoozed_until`` and then
    # comes back unread; ``seen_at`` is when the bell's list showed it (the unseen count).
    sa.Column("topic", sa.String(128)),
    sa.Column("seen_at", UTCDateTime),
    sa.Column("archived_at", UTCDateTime),
    sa.Column("snoozed_until", UTCDateTime),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: Each source's last sync: started, succeeded, failed (with its error), and what it stored.
source_syncs = sa.Table(
    "source_syncs",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("succeeded_at", UTCDateTime, nullable=True),
    sa.Column("failed_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("stored", sa.Integer, nullable=False),
    sa.Column("skipped", sa.Integer, nullable=False),
)

#: Which contact each identity key names (``email:ana@acme.test``, ``id:crm:hubspot-101``),
#: and which source claimed it first: see :mod:`onetomany.plugins.identity`.
identity_keys = sa.Table(
    "identity_keys",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("contact_id", sa.String(255), nullable=False, index=True),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
)

tier_states = sa.Table(
    "tier_states",
    metadata,
    sa.Column("account_id", sa.String(255), primary_key=True),
    sa.Column("tier", sa.String(8), nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
    sa.Column("candidate", sa.String(8)),
    sa.Column("candidate_since", UTCDateTime),
)

segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("segment", sa.String(128), primary_key=True),
    sa.Column("contact_id", sa.String(255), primary_key=True),
    sa.Column("since", UTCDateTime, nullable=False),
)

journey_states = sa.Table(
    "journey_states",
    metadata,
    sa.Column("journey", sa.String(128), primary_key=True),
    sa.Column("account_id", sa.String(255), primary_key=True),
    sa.Column("stage", sa.String(128), nullable=False),
    sa.Column("entry_id", sa.String(64), nullable=False),
    sa.Column("entered_at", UTCDateTime, nullable=False),
    sa.Column("completed_at", UTCDateTime),
    sa.Column("overdue_at", UTCDateTime),
    # A steady journey round finds the stages that became overdue since the last one.
    sa.Index("ix_journey_states_entered", "journey", "stage", "entered_at"),
)

journey_history = sa.Table(
    "journey_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("journey", sa.String(128), nullable=False),
    sa.Column("account_id", sa.String(255), nullable=False),
    sa.Column("stage", sa.String(128), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("entry_id", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_journey_history_account", "journey", "account_id", "id"),
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("touch", sa.String(128), primary_key=True),
    sa.Column("contact_id", sa.String(255), primary_key=True),
    sa.Column("anchor_id", sa.String(64), nullable=False),
    sa.Column("anchor_at", UTCDateTime, nullable=False),
    sa.Column("next_at", UTCDateTime, index=False),
    sa.Column("fired", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_schedules_due", "next_at"),
    # A touch's due rows: led by next_at alone, SQLite preferred the primary key and read
    # every row of the touch each round.
    sa.Index("ix_schedules_touch_due", "touch", "next_at"),
)

#: What the engine decided about a touch for a recipient (:class:`onetomany.Decision`), as
#: ``record`` (its JSON form), once per key and outcome; pruned after the retention.
decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("touch", sa.String(128), nullable=False),
    sa.Column("contact_id", sa.String(255), nullable=False),
    sa.Column("idempotency_key", sa.String(512), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("record", sa.JSON, nullable=False),
    sa.UniqueConstraint("idempotency_key", "outcome", name="uq_decisions_key_outcome"),
    sa.Index("ix_decisions_recipient", "touch", "contact_id", "id"),
    sa.Index("ix_decisions_at", "at"),
)

#: Named leases: which worker holds a piece of shared work (a program's tick) until when.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
)

#: Addresses never to be contacted again, keyed by the normalised address (lower-cased email
#: with an IDNA domain, or E.164 phone): why, who said so and when.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
)

#: Each contact's current answer per topic and channel ("" for every topic or channel); the
#: history of changes is the ``unsubscribed`` / ``resubscribed`` events.
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("contact_id", sa.String(255), primary_key=True),
    sa.Column("topic", sa.String(128), primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("subscribed", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

cap_reservations = sa.Table(
    "cap_reservations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("cap", sa.String(128), nullable=False),
    sa.Column("scope", sa.String(255), nullable=False),
    sa.Column("outbox_id", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("cap", "outbox_id", name="uq_cap_reservations_cap_row"),
    sa.Index("ix_cap_reservations_scope", "cap", "scope", "at"),
)

holdouts = sa.Table(
    "holdouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(512), nullable=False),
    sa.Column("program", sa.String(128), nullable=False),
    sa.Column("touch", sa.String(128), nullable=False),
    sa.Column("contact_id", sa.String(255), nullable=False),
    sa.Column("account_id", sa.String(255), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("idempotency_key", name="uq_holdouts_key"),
    sa.Index("ix_holdouts_touch", "touch", "at"),
)

health_scores = sa.Table(
    "health_scores",
    metadata,
    sa.Column("account_id", sa.String(255), primary_key=True),
    sa.Column("at", UTCDateTime, primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
    # Each measure's value and points, for the report and for people asking why.
    sa.Column("measures", sa.JSON, nullable=False),
)

#: Token buckets of the per-channel rate limits, shared by every worker of the store.
rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
