"""A page of contact rows read column by column (``records.contact_columns``, then
``onetomany.model.pages.contact_columns``) gives the contacts that reading each row on its own
gives (``records.contact_fields``, then ``Contact``), or declines the page, which is then read
row by row (where a bad row is a skip naming it)."""

from __future__ import annotations

import decimal
from datetime import datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from onetomany import Contact
from onetomany.errors import InputError
from onetomany.model import pages
from onetomany_sql.options import Query
from onetomany_sql.records import RowError, contact_columns, contact_fields, layout

QUERY = Query(
    kind="contacts",
    sql="SELECT * FROM users",
    cursor="changed_at",
    columns={"account_id": "company_id", "name": "full_name", "role": "job"},
)
KEYS = ["id", "company_id", "full_name", "email", "job", "timezone", "seats", "changed_at"]

texts = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "acme", " Ana Lima ", "x" * 256, "é", "a\x00b"]),
    st.integers(0, 9),
)
rows = st.tuples(
    st.one_of(st.integers(0, 9999).map("u{}".format), texts),  # id
    st.one_of(st.just("acme"), texts),  # company_id
    st.one_of(st.just("Ana Lima"), texts),  # full_name
    st.one_of(st.just("ana@acme.test"), st.none(), st.sampled_from(["no-at", " b@x.test"])),
    st.one_of(st.just("admin"), texts),  # job
    st.one_of(st.just("UTC"), st.sampled_from(["Europe/Lisbon", "Nowhere/City", ""]), st.none()),
    st.one_of(  # a trait: plain or converted
        st.integers(-(2**70), 2**70),
        st.none(),
        st.floats(),
        st.decimals(allow_nan=False, allow_infinity=False, places=2),
        st.datetimes(),
    ),
    st.just(datetime(2026, 1, 1)),  # changed_at: the cursor, not a trait
)


def _row_by_row(page):
    laid = layout(QUERY, KEYS)
    try:
        return [Contact(**contact_fields(dict(zip(KEYS, r, strict=True)), laid)) for r in page]
    except (RowError, InputError):
        return None


@settings(max_examples=400)
@given(st.lists(rows, min_size=1, max_size=6))
@example([("u1", "acme", "Ana", "ana@acme.test", "admin", "UTC", decimal.Decimal("2.50"), None)])
@example([("u1", "acme", None, None, None, "UTC", 3, None)])
def test_a_page_read_by_column_agrees_with_each_row_read_alone(page):
    columns = contact_columns(layout(QUERY, KEYS), KEYS, page)
    fast = pages.contact_columns(columns) if columns is not None else None
    alone = _row_by_row(page)
    if fast is None:
        return  # read row by row: the row path decides
    assert alone is not None, "the column path accepted a row the row path refuses"
    assert fast == alone
    assert [c.given for c in fast] == [c.given for c in alone]


def test_a_plain_page_is_read_by_column():
    page = [
        (f"u{i}", "acme", f"Person {i}", f"p{i}@acme.test", "admin", "UTC", i, None)
        for i in range(20)
    ]
    columns = contact_columns(layout(QUERY, KEYS), KEYS, page)
    assert columns is not None
    assert pages.contact_columns(columns) == _row_by_row(page)
