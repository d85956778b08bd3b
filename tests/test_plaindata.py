"""The one-pass check of flat traits gives the general walk's verdict on every mapping."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from onetomany.model.plaindata import MAX_INT, json_problem, text_problem

_TEXT = st.text(alphabet=st.sampled_from(["a", "Z", "é", "\x00", "\ud800", " ", "-"]), max_size=6)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
    st.just(b"bytes"),
    st.just(math.nan),
    st.sampled_from([MAX_INT, MAX_INT + 1, -MAX_INT - 1, -MAX_INT - 2]),
)
_KEYS = st.one_of(_TEXT, st.integers(max_value=3, min_value=0))


@given(st.dictionaries(_KEYS, _SCALARS, max_size=4))
def test_a_flat_mapping_gets_the_same_verdict_as_when_nested(traits):
    # Nested one level down, the mapping goes through the general walk, never the fast one.
    flat = json_problem(traits, name="traits")
    nested = json_problem({"k": traits}, name="traits")
    assert (flat is None) == (nested is None), (flat, nested)


@given(_TEXT)
def test_text_problem_accepts_exactly_what_encodes_without_nul(text):
    try:
        text.encode("utf-8")
        encodes = True
    except UnicodeEncodeError:
        encodes = False
    assert (text_problem(text) is None) == (encodes and "\x00" not in text)
