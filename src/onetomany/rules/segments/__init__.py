"""Segments: named, composable predicates over a contact and its account.

One semantics, two evaluators: :func:`evaluate` decides for one :class:`Profile` in Python,
and :func:`onetomany.store.segments.to_sql` compiles the same expression to a SQLAlchemy
condition for a whole population (:func:`onetomany.store.segments.matching_contact_ids`).
The property tests check that they agree for every contact, on SQLite and PostgreSQL.
The full guide is ``docs/segments.md``.

Grammar (lowest precedence first; ``|`` separates alternatives, ``?`` optional, ``*`` repeat)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum ( ("==" | "!=" | "<" | "<=" | ">" | ">=") sum
                      | "not"? "in" "[" (literal ("," literal)* ","?)? "]"
                      | "not"? "between" sum "and" sum )?
    sum        := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | STRING | "true" | "false" | "null" | field | call | "(" expr ")"
    literal    := "-"? NUMBER | STRING | "true" | "false" | "null"
    field      := ("contact" | "account") "." "traits"? NAME ("." NAME)*
    call       := "days_since" "(" expr ")" | "exists" "(" expr ")" | "missing" "(" expr ")"
                | "count" "(" STRING ("," "days" "=" INTEGER)? ("," "by" "=" BY)? ")"
                | "last" "(" STRING ("," "by" "=" BY)? ")"
                | "segment" "(" STRING ")"
                | "tier" "(" ")" | "stage" "(" STRING ")" | "days_in_stage" "(" STRING ")"
                | "health" "(" ")" | "health_trend" "(" INTEGER ")"
    BY         := "account" | "contact"  (in quotes; "account" is the default)
    NUMBER     := digits ("." digits)? (("e" | "E") ("+" | "-")? digits)?
    STRING     := '"' ... '"' | "'" ... "'"   (escapes: \\\\ \\" \\' \\n \\t \\r)
    NAME       := [A-Za-z_][A-Za-z0-9_]*

Fields: ``contact.id|account_id|name|email|phone|role|locale|timezone`` and
``account.id|name`` are columns; any other name is a trait (``account.billing.overdue`` is a
nested one; ``account.traits.name`` reaches a trait hidden by a column name). ``last()`` may
only appear inside ``days_since()``, ``exists()`` or ``missing()``.

Semantics (SQL's three-valued logic, collapsed at the top):

- A missing value (absent key, JSON null, a list or object, no account) is *unknown*.
- Numbers (integers too) compare as doubles, strings by code point, booleans only with
  ``==``/``!=``; two values of different kinds, or an unknown one, compare as unknown.
- ``and``/``or``/``not`` are SQL's; ``x in [a, b]`` is ``x == a or x == b`` (``[]``: false);
  ``between`` is ``>= and <=``; arithmetic on a non-number or ``/ 0`` is unknown.
- A value used as a condition must be a boolean; anything else is unknown.
- ``exists(x)``/``missing(x)`` are never unknown; ``segment("x")`` is true or false.
- ``days_since(x)``: whole days (rounded down) from a date string (rules in :mod:`.dates`) or
  from ``last()`` to ``now``; ``count(e, days=N)``: events named ``e`` of the contact's
  account (``by="contact"``: of the contact) with ``now - N days <= occurred_at <= now``;
  ``last(e)``: the latest such event at or before ``now``, missing when there is none.
- ``tier()``: the tier of the contact's account (``tier_states.tier``: "tech", "low", "mid"
  or "high"), a string; missing when the account has no tier state (or the contact no
  account). ``stage("j")``: the name of the account's current stage in journey ``j``
  (``journey_states.stage``), a string; missing when the account is not in ``j`` or no
  journey ``j`` exists. ``days_in_stage("j")``: whole days (rounded down) from entering that
  stage (``entered_at``) to ``now``; missing when ``stage("j")`` is.
- ``health()``: the account's latest health score (0-100, ``health_scores``) at or before
  ``now``; missing when it has none. ``health_trend(N)``: ``health()`` minus the latest
  score at or before ``now - N days``; missing when either is.
- A contact is in the segment only when the result is true.
"""

from onetomany.rules.segments.ast import Expr, unparse
from onetomany.rules.segments.evaluate import Profile, evaluate
from onetomany.rules.segments.named import SegmentSet, references
from onetomany.rules.segments.parser import parse
from onetomany.rules.segments.typecheck import TRAIT_TYPES, check_types

__all__ = [
    "TRAIT_TYPES",
    "Expr",
    "Profile",
    "SegmentSet",
    "check_types",
    "evaluate",
    "parse",
    "references",
    "unparse",
]
