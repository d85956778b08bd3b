"""A page of customers read column by column (``mapping.customer_columns``, then
``onetomany.model.pages.account_columns``) gives the accounts that reading each customer on
its own gives (``customer_account``), or declines the page, which is then read customer by
customer (where one that maps to no account is a skip naming it)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_stripe_billing import OPTIONS

from onetomany.errors import InputError
from onetomany.model.pages import account_columns
from onetomany_stripe.mapping import Unmapped, customer_account, customer_columns

account_ids = st.one_of(
    st.integers(0, 99999).map("acct{}".format),
    st.sampled_from(["", " ", "é", "x" * 256, "a\x00b"]),
    st.integers(0, 9),
    st.none(),
)
customers = st.builds(
    lambda n, metadata: {"id": f"cus_{n}", "object": "customer", **metadata},
    st.integers(0, 10**6),
    st.one_of(
        st.fixed_dictionaries({"metadata": st.fixed_dictionaries({"account_id": account_ids})}),
        st.just({"metadata": {}}),
        st.just({"metadata": None}),
        st.just({}),
    ),
)


def _one_by_one(page):
    try:
        return [customer_account(c, OPTIONS) for c in page]
    except (Unmapped, InputError, KeyError, TypeError):
        return None


@settings(max_examples=300)
@given(st.lists(customers, min_size=1, max_size=6))
def test_a_page_of_customers_read_by_column_agrees_with_each_alone(page):
    columns = customer_columns(page, OPTIONS)
    fast = account_columns(columns) if columns is not None else None
    alone = _one_by_one(page)
    if fast is None:
        return
    assert alone is not None, "the column path accepted a customer the record path refuses"
    assert fast == alone
    assert [a.given for a in fast] == [a.given for a in alone]


def test_a_plain_page_of_customers_is_read_by_column():
    page = [{"id": f"cus_{i}", "metadata": {"account_id": f"acct{i}"}} for i in range(100)]
    columns = customer_columns(page, OPTIONS)
    assert columns is not None
    assert account_columns(columns) == _one_by_one(page)
