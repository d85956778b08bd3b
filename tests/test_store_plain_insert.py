"""New profiles are inserted on SQLite as prebuilt tuples (``store._PlainInsert``): the rows it
writes must be the rows SQLAlchemy's own insert writes, byte for byte, for any profile."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.errors import InputError
from onetomany.store import Store
from onetomany.store.schema import accounts, contacts
from onetomany.store.store import _account_row, _contact_row

_ids = itertools.count()
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
traits = st.dictionaries(st.text(max_size=10), json_data, max_size=4)
texts = st.text(max_size=30)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store]]:
    folder = tmp_path_factory.mktemp("plain-insert")
    ours, theirs = Store(folder / "ours.db"), Store(folder / "theirs.db")
    yield ours, theirs
    ours.close()
    theirs.close()


def _rows(store: Store, table: sa.Table, ids: list[str]) -> list[tuple[object, ...]]:
    # The raw rows, as SQLite keeps them: text for JSON and datetimes.
    names = ", ".join(f"'{i}'" for i in ids)
    with store.engine.connect() as conn:
        sql = f"SELECT * FROM {table.name} WHERE id IN ({names}) ORDER BY id"
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            texts,
            texts,
            st.sampled_from(["en", "pt-BR"]),
            st.one_of(st.none(), st.booleans()),
            traits,
            traits,
        ),
        min_size=1,
        max_size=5,
    ),
    moments,
    st.booleans(),
)
def test_plain_inserts_write_what_sqlalchemy_writes(stores, people, now, same_now):
    ours, theirs = stores
    built: list[Contact] = []
    firms: list[Account] = []
    for name, role, locale, sms, given_traits, consent_traits in people:
        n = next(_ids)
        try:
            contact = Contact(
                id=f"c{n}",
                account_id=f"a{n}",
                name=name,
                role=role,
                locale=locale,
                # No answer: the empty consent most contacts have, written as one text.
                consent={} if sms is None else {"sms": sms},
                traits=given_traits,
            )
            firm = Account(id=f"a{n}", name=name, traits=consent_traits)
        except InputError:
            continue  # text no database keeps is refused before it reaches the store
        built.append(contact)
        firms.append(firm)
    if not built:
        return
    # The page's rows share one ``updated_at`` (processed once), or each has its own.
    at = now if same_now else now + timedelta(microseconds=1)
    ours.save_profiles(accounts=firms, contacts=built, now=at)
    with theirs.engine.begin() as conn:
        # onto(None): what a new profile becomes (a trait given as None is not kept).
        conn.execute(sa.insert(accounts), [_account_row(a.onto(None), at) for a in firms])
        conn.execute(sa.insert(contacts), [_contact_row(c.onto(None), at) for c in built])
    for table, ids in ((contacts, [c.id for c in built]), (accounts, [a.id for a in firms])):
        assert _rows(ours, table, ids) == _rows(theirs, table, ids)
    # And read back as the values that were saved.
    assert ours.get_contacts([c.id for c in built]) == {c.id: c.onto(None) for c in built}
