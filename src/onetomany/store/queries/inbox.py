"""The in-app inbox: a contact's messages by tab and topic, their counts, and the changes the
contact makes to them (read, seen, archived, snoozed).

Every function takes the contact id and touches that contact's rows only: the web API
authenticates a contact by a token and passes its contact id here, so an item id of another
contact matches nothing (it reads as absent, and changes nothing).

An item is **visible** when it is neither archived nor snoozed past ``now``. A snooze hides an
item until its time and clears its read and seen marks, so it comes back unread and unseen;
it then sorts by the time it came back (``InboxItem.shown_at``), newest first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from onetomany.errors import InputError
from onetomany.model.plaindata import MAX_INT
from onetomany.store import schema
from onetomany.store.store import InboxItem

if TYPE_CHECKING:
    from onetomany.store import Store

#: The lists a contact can ask for: what is in the inbox, the unread part of it, the archive.
TABS = ("inbox", "unread", "archived")
#: The most items one page may hold.
MAX_PAGE = 100

_t = schema.inbox
# Where an item sorts: a snoozed one by the time it comes back (always after it arrived).
_shown = sa.type_coerce(sa.func.coalesce(_t.c.snoozed_until, _t.c.created_at), schema.UTCDateTime)
_POSITION = re.compile(r"(\d{1,19})-(\d{1,19})")


@attrs.frozen(kw_only=True)
class InboxCounts:
    """What the bell shows: unread visible items, and visible items the list never showed."""

    unread: int
    unseen: int


@attrs.frozen(kw_only=True)
class Position:
    """Where a page ended; the next page starts after it. Written as ``<microseconds>-<id>``."""

    shown_at: datetime
    id: int

    def __str__(self) -> str:
        micros = (self.shown_at - _EPOCH) // _MICROSECOND
        return f"{micros}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """Read a position written by ``str()``; anything else is an InputError naming it."""
        match = _POSITION.fullmatch(text)
        if match is None or int(match[2]) > MAX_INT or int(match[1]) > _MAX_MICROS:
            raise InputError(f"page position {text[:80]!r} is not one this inbox wrote")
        return cls(shown_at=_EPOCH + int(match[1]) * _MICROSECOND, id=int(match[2]))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH
_MAX_MICROS = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) // _MICROSECOND


@attrs.frozen(kw_only=True)
class InboxPage:
    """One page of a tab, newest first, and where the next one starts (``None``: no more)."""

    items: tuple[InboxItem, ...]
    next: Position | None


# A time: a value, or the bound parameter of a statement built once (``_NOW``).
_When = datetime | sa.BindParameter[Any]


def _not_snoozed(now: _When) -> sa.ColumnElement[bool]:
    return sa.or_(_t.c.snoozed_until.is_(None), _t.c.snoozed_until <= now)


def _visible(now: _When) -> sa.ColumnElement[bool]:
    return sa.and_(_t.c.archived_at.is_(None), _not_snoozed(now))


def _in_tab(tab: str, now: _When) -> sa.ColumnElement[bool]:
    if tab == "inbox":
        return _visible(now)
    if tab == "unread":
        return sa.and_(_visible(now), _t.c.read_at.is_(None))
    if tab == "archived":
        return _t.c.archived_at.is_not(None)
    raise InputError(f"inbox tab {tab[:40]!r} is not one of {', '.join(TABS)}")


_ITEM_FIELDS = tuple(f.name for f in attrs.fields(InboxItem))


def _item(row: sa.Row[Any]) -> InboxItem:
    mapping = row._mapping
    return InboxItem(**{name: mapping[name] for name in _ITEM_FIELDS})


def row_ids(ids: Iterable[object], *, what: str = "inbox item id") -> list[int]:
    """``ids`` checked to be row ids; the first that is not is an InputError naming it."""
    checked = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_INT:
            shown = f"a {value.bit_length()}-bit integer" if isinstance(value, int) else repr(value)
            raise InputError(f"{what} {shown} is not a row id (a whole number from 1 to 2**63-1)")
        checked.append(value)
    return checked


# The statements a read runs are built once per shape and take their values as bound
# parameters: building and hashing a SELECT costs more CPU than SQLite spends running it, and a
# cached statement also hits SQLAlchemy's compiled cache at once.
_CONTACT = sa.bindparam("contact", type_=sa.String)
_NOW = sa.bindparam("now", type_=schema.UTCDateTime)
_LIMIT = sa.bindparam("limit", type_=sa.Integer)
_TOPIC = sa.bindparam("topic", type_=sa.String)
_AFTER_SHOWN = sa.bindparam("after_shown", type_=schema.UTCDateTime)
_AFTER_ID = sa.bindparam("after_id", type_=sa.Integer)


@functools.cache
def _page_select(tab: str, by_topic: bool, after: bool) -> sa.Select[Any]:
    """A tab's page (``limit`` + 1 rows, to know whether more follow), newest first."""
    query = sa.select(_t).where(_t.c.contact_id == _CONTACT, _in_tab(tab, _NOW))
    if by_topic:
        query = query.where(_t.c.topic == _TOPIC)
    if after:
        query = query.where(
            sa.or_(
                _shown < _AFTER_SHOWN,
                sa.and_(_shown == _AFTER_SHOWN, _t.c.id < _AFTER_ID),
            )
        )
    return query.order_by(_shown.desc(), _t.c.id.desc()).limit(_LIMIT)


def _counts_select() -> sa.Select[int, int]:
    return sa.select(
        sa.func.count().filter(_t.c.read_at.is_(None)).label("unread"),
        sa.func.count().filter(_t.c.seen_at.is_(None)).label("unseen"),
    ).where(_t.c.contact_id == _CONTACT, _visible(_NOW))


_COUNTS = _counts_select()


@functools.cache
def _view_select(tab: str, by_topic: bool, after: bool) -> sa.Select[Any]:
    """The page, the counts and the contact's locale and timezone in one statement: one
    row per item, each carrying the counts, or one row of counts alone for an empty page."""
    contacts = schema.contacts
    profile = sa.select(contacts.c.locale, contacts.c.timezone).where(contacts.c.id == _CONTACT)
    head = (
        _counts_select()
        .add_columns(
            profile.with_only_columns(contacts.c.locale).scalar_subquery().label("contact_locale"),
            profile.with_only_columns(contacts.c.timezone)
            .scalar_subquery()
            .label("contact_timezone"),
        )
        .subquery("head")
    )
    page = _page_select(tab, by_topic, after).subquery("page")
    shown = sa.func.coalesce(page.c.snoozed_until, page.c.created_at)
    return (
        sa.select(head, *page.c)
        .select_from(head.outerjoin(page, sa.true()))
        .order_by(shown.desc(), page.c.id.desc())
    )


def _page_params(
    contact_id: str,
    now: datetime,
    tab: str,
    topic: str | None,
    limit: int,
    after: Position | None,
) -> tuple[sa.Select[Any], dict[str, Any]]:
    if not 0 < limit <= MAX_PAGE:
        raise InputError(f"inbox page size {limit} is not from 1 to {MAX_PAGE}")
    if tab not in TABS:
        raise InputError(f"inbox tab {tab[:40]!r} is not one of {', '.join(TABS)}")
    params: dict[str, Any] = {"contact": contact_id, "now": now, "limit": limit + 1}
    if topic is not None:
        params["topic"] = topic
    if after is not None:
        params["after_shown"] = after.shown_at
        params["after_id"] = after.id
    return _page_select(tab, topic is not None, after is not None), params


def _paged(items: list[InboxItem], limit: int) -> InboxPage:
    more = len(items) > limit
    items = items[:limit]
    last = Position(shown_at=items[-1].shown_at, id=items[-1].id) if more else None
    return InboxPage(items=tuple(items), next=last)


def inbox_page(
    store: Store,
    contact_id: str,
    *,
    now: datetime,
    tab: str = "inbox",
    topic: str | None = None,
    limit: int = 20,
    after: Position | None = None,
) -> InboxPage:
    """One page of ``tab`` (of ``topic`` only, if given), newest first, after ``after``."""
    query, params = _page_params(contact_id, now, tab, topic, limit, after)
    with store.read() as conn:
        items = [_item(row) for row in conn.execute(query, params)]
    return _paged(items, limit)


@attrs.frozen(kw_only=True)
class InboxView:
    """What the inbox list shows at once: a page, the bell's counts, and the contact's
    locale and timezone (``None`` for a contact the store does not know)."""

    page: InboxPage
    counts: InboxCounts
    locale: str | None
    timezone: str | None


def inbox_view(
    store: Store,
    contact_id: str,
    *,
    now: datetime,
    tab: str = "inbox",
    topic: str | None = None,
    limit: int = 20,
    after: Position | None = None,
) -> InboxView:
    """:func:`inbox_page`, :func:`inbox_counts` and the contact's locale and timezone, read
    by one statement (one snapshot: the counts agree with the page)."""
    _, params = _page_params(contact_id, now, tab, topic, limit, after)
    query = _view_select(tab, topic is not None, after is not None)
    with store.read() as conn:
        rows = conn.execute(query, params).all()
    head = rows[0]._mapping
    items = [_item(row) for row in rows if row._mapping["id"] is not None]
    return InboxView(
        page=_paged(items, limit),
        counts=InboxCounts(unread=int(head["unread"]), unseen=int(head["unseen"])),
        locale=head["contact_locale"],
        timezone=head["contact_timezone"],
    )


def inbox_items(
    store: Store, contact_id: str, *, now: datetime, unread_only: bool = False
) -> list[InboxItem]:
    """Every visible item (only the unread ones, with ``unread_only``), newest first."""
    query = sa.select(_t).where(
        _t.c.contact_id == contact_id, _in_tab("unread" if unread_only else "inbox", now)
    )
    with store.read() as conn:
        rows = conn.execute(query.order_by(_shown.desc(), _t.c.id.desc()))
        return [_item(row) for row in rows]


def inbox_item(store: Store, contact_id: str, item_id: int) -> InboxItem | None:
    """The contact's item ``item_id`` (``None``: no such item, or another contact's)."""
    (checked,) = row_ids([item_id])
    query = sa.select(_t).where(_t.c.contact_id == contact_id, _t.c.id == checked)
    with store.read() as conn:
        row = conn.execute(query).first()
    return _item(row) if row is not None else None


def inbox_counts(store: Store, contact_id: str, *, now: datetime) -> InboxCounts:
    """The contact's unread and unseen visible items, in one statement."""
    with store.read() as conn:
        unread, unseen = conn.execute(_COUNTS, {"contact": contact_id, "now": now}).one()
    return InboxCounts(unread=int(unread), unseen=int(unseen))


def unread_keys(
    store: Store, contact_id: str, item_ids: Iterable[int] | None, *, now: datetime
) -> list[str]:
    """The outbox keys of the items :func:`mark_read` would change now."""
    query = sa.select(_t.c.idempotency_key).where(_unread(contact_id, item_ids, now))
    with store.read() as conn:
        return list(conn.scalars(query.order_by(_t.c.id)))


def _unread(
    contact_id: str, item_ids: Iterable[int] | None, now: datetime
) -> sa.ColumnElement[bool]:
    # "All" is what the bell counts (the visible items); an archived item is read by its id
    # (from the archive tab). A snoozed item is hidden either way.
    where = sa.and_(_t.c.contact_id == contact_id, _t.c.read_at.is_(None))
    if item_ids is None:
        return sa.and_(where, _visible(now))
    return sa.and_(where, _not_snoozed(now), _t.c.id.in_(row_ids(item_ids)))


def mark_read(
    store: Store, contact_id: str, item_ids: Iterable[int] | None, *, now: datetime
) -> int:
    """Mark some of the contact's unread items read (``None``: every visible one); returns
    how many changed."""
    ids = None if item_ids is None else row_ids(item_ids)
    with store.write() as conn:
        changed = conn.execute(
            sa.update(_t).where(_unread(contact_id, ids, now)).values(read_at=now)
        )
        return int(changed.rowcount)


def mark_seen(store: Store, contact_id: str, *, now: datetime) -> int:
    """Mark every visible item the list has not shown yet seen; returns how many."""
    where = sa.and_(_t.c.contact_id == contact_id, _t.c.seen_at.is_(None), _visible(now))
    with store.write() as conn:
        return int(conn.execute(sa.update(_t).where(where).values(seen_at=now)).rowcount)


def archive(
    store: Store, contact_id: str, item_ids: Iterable[int], *, now: datetime, archived: bool = True
) -> int:
    """Archive the contact's items (or, with ``archived=False``, bring them back to the
    inbox); returns how many changed."""
    ids = row_ids(item_ids)
    state = _t.c.archived_at.is_(None) if archived else _t.c.archived_at.is_not(None)
    where = sa.and_(_t.c.contact_id == contact_id, _t.c.id.in_(ids), state)
    with store.write() as conn:
        changed = conn.execute(
            sa.update(_t).where(where).values(archived_at=now if archived else None)
        )
        return int(changed.rowcount)


def snooze(store: Store, contact_id: str, item_id: int, *, until: datetime, now: datetime) -> int:
    """Hide the contact's item until ``until`` (after ``now``), when it comes back unread and
    unseen in the inbox (a snooze takes it out of the archive); returns 1, or 0 for no such
    item of this contact."""
    if until <= now:
        raise InputError(
            f"a snooze must end after now ({now.isoformat()}), not {until.isoformat()}"
        )
    (checked,) = row_ids([item_id])
    where = sa.and_(_t.c.contact_id == contact_id, _t.c.id == checked)
    values = {"snoozed_until": until, "read_at": None, "seen_at": None, "archived_at": None}
    with store.write() as conn:
        return int(conn.execute(sa.update(_t).where(where).values(**values)).rowcount)
