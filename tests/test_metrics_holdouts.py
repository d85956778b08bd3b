"""Holdouts: the control group is stable and of the declared share, held-out recipients get a
``holdout`` decision instead of the message, and the uplift matches reference computations."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany import Account, Contact
from onetomany.errors import ConfigErrors
from onetomany.metrics.holdouts import (
    MIN_GROUP,
    HoldoutResult,
    holdout_results,
    newcombe,
    wilson,
)
from onetomany.model.decisions import Outcome
from onetomany.program import Audience, EventTrigger, Program, Touch, load_program
from onetomany.rules.goals import Goal
from onetomany.rules.holdouts import Holdout, draw
from onetomany.store import schema

from .conftest import WELCOME, write_templates
from .test_metrics_goals import _event, _sent

T0 = datetime(2026, 9, 1, 9, tzinfo=UTC)
GOAL = Goal(event="report_created", within_days=7)

# -- the split ---------------------------------------------------------------------------------

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    salt=st.text(max_size=12),
    share=st.floats(min_value=0.02, max_value=0.5),
    prefix=st.text(max_size=6),
)
def test_the_split_is_within_statistical_tolerance_of_the_declared_share(salt, share, prefix):
    """Over 4,000 ids the held-out count is a binomial draw: within 5 standard deviations
    of its mean (a false alarm once in about 3.5 million runs)."""
    holdout = Holdout(share=share, salt=salt)
    n = 4000
    held = sum(holdout.holds_out(f"{prefix}{i}", None) for i in range(n))
    assert abs(held - n * share) <= 5 * math.sqrt(n * share * (1 - share))


@settings(max_examples=200, deadline=None)
@given(
    salt=st.text(max_size=12),
    share=st.floats(min_value=0.01, max_value=0.99),
    contact=ids,
    account=st.none() | ids,
    by=st.sampled_from(["contact", "account"]),
)
def test_membership_is_stable_and_only_depends_on_salt_and_unit(salt, share, contact, account, by):
    first = Holdout(share=share, by=by, salt=salt)
    again = Holdout(share=share, by=by, salt=salt)
    assert first.holds_out(contact, account) == again.holds_out(contact, account)
    unit = account if by == "account" and account else contact
    assert first.holds_out(contact, account) == (draw(salt, unit) < share)
    # A larger share keeps everyone a smaller one kept: raising it adds members only.
    if first.holds_out(contact, account):
        assert Holdout(share=min(0.99, share + 0.1), by=by, salt=salt).holds_out(contact, account)


def test_by_account_every_contact_of_an_account_is_in_the_same_group():
    holdout = Holdout(share=0.5, by="account", salt="s")
    for account in (f"a{i}" for i in range(50)):
        groups = {holdout.holds_out(f"{account}-c{j}", account) for j in range(5)}
        assert len(groups) == 1


def test_the_salt_is_derived_from_program_and_touch_unless_declared():
    assert Holdout(share=0.1).salted("acme", "welcome").salt == "acme/welcome"
    assert Holdout(share=0.1).salted("acme", None).salt == "acme"
    assert Holdout(share=0.1, salt="exp-1").salted("acme", "welcome").salt == "exp-1"


# -- the uplift --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        # Newcombe (1998), "Interval estimation for the difference between independent
        # proportions", Statistics in Medicine 17: Table II, method 10.
        ((56, 70, 48, 80), (0.2, 0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.6, 0.1705, 0.8090)),
        ((5, 56, 0, 29), (0.0893, -0.0381, 0.1926)),
        ((0, 10, 0, 20), (0.0, -0.1611, 0.2775)),
        ((10, 10, 0, 20), (1.0, 0.6791, 1.0)),
    ],
)
def test_the_uplift_interval_matches_newcombes_published_values(table, expected):
    assert newcombe(*table) == pytest.approx(expected, abs=5e-5)


def test_the_uplift_interval_matches_a_computation_by_hand():
    """30 of 100 treated converted, 20 of 100 held out; Wilson with z = 1.96, denominator
    1 + 1.96^2/100 = 1.038416, z^2/(4 n^2) = 0.00009604.
    30/100: centre 0.3 + 0.019208 = 0.319208, spread 1.96 * sqrt(0.0021 + 0.00009604)
    = 0.0918493, so (0.2273587, 0.4110573) / 1.038416 = (0.218948, 0.395850).
    20/100: centre 0.219208, spread 1.96 * sqrt(0.0016 + 0.00009604) = 0.0807187, so
    (0.1384893, 0.2999267) / 1.038416 = (0.133366, 0.288831).
    Difference 0.1; low 0.1 - hypot(0.081052, 0.088831) = -0.020250;
    high 0.1 + hypot(0.095850, 0.066634) = 0.216735."""
    z = 1.96
    assert wilson(30, 100, z) == pytest.approx((0.218948, 0.395850), abs=2e-6)
    assert wilson(20, 100, z) == pytest.approx((0.133366, 0.288831), abs=2e-6)
    assert newcombe(30, 100, 20, 100, z) == pytest.approx((0.1, -0.020250, 0.216735), abs=2e-6)


def _result(**counts: int) -> HoldoutResult:
    return HoldoutResult(touch="t", goal=GOAL, share=0.1, **counts)


def test_a_small_sample_is_flagged_and_an_interval_holding_zero_is_inconclusive():
    small = _result(treated=20, treated_converted=5, held_out=3, held_out_converted=0)
    assert small.warning is not None and small.warning.startswith("too small")
    even = _result(treated=500, treated_converted=100, held_out=60, held_out_converted=12)
    assert even.warning is not None and even.warning.startswith("inconclusive")
    clear = _result(treated=900, treated_converted=300, held_out=100, held_out_converted=10)
    assert clear.warning is None
    assert clear.uplift is not None and clear.uplift[1] > 0
    none = _result(treated=MIN_GROUP, treated_converted=1, held_out=0, held_out_converted=0)
    assert none.uplift is None and none.control_rate is None


# -- reading program.toml ----------------------------------------------------------------------

TOML = """\
[program]
name = "acme"
holdout = 0.05
[channels.email]
plugin = "outbox"
folder = "out"
[touches.welcome]
channel = "email"
template = "welcome"
holdout = 0.2
holdout_by = "account"
[touches.resend]
channel = "email"
template = "welcome"
"""


def _folder(tmp_path, toml):
    (tmp_path / "program.toml").write_text(toml)
    write_templates(tmp_path / "templates", welcome=WELCOME)
    return tmp_path


def test_a_touch_holdout_and_the_programs_are_read(tmp_path):
    program = load_program(_folder(tmp_path, TOML))
    assert program.holdout_of(program.touch("welcome")) == Holdout(
        share=0.2, by="account", salt="acme/welcome"
    )
    assert program.holdout_of(program.touch("resend")) == Holdout(share=0.05, salt="acme")


@pytest.mark.parametrize(
    ("lines", "key", "reason"),
    [
        ("holdout = 1.5", "touches.welcome.holdout", "between 0 and 1"),
        ("holdout = true", "touches.welcome.holdout", "between 0 and 1"),
        ('holdout = 0.1\nholdout_by = "team"', "touches.welcome.holdout_by", "contact or account"),
        ('holdout_by = "account"', "touches.welcome.holdout", "needs a holdout share"),
        ("holdout = 0.1\nholdout_salt = 3", "touches.welcome.holdout_salt", "a string"),
    ],
)
def test_a_wrong_holdout_is_named_with_its_file_and_key(tmp_path, lines, key, reason):
    broken = TOML.replace('holdout = 0.2\nholdout_by = "account"', lines)
    with pytest.raises(ConfigErrors) as caught:
        load_program(_folder(tmp_path, broken))
    [error] = caught.value.errors
    assert error.key == key and reason in error.reason
    assert error.file.endswith("program.toml")


# -- the engine --------------------------------------------------------------------------------


def test_held_out_recipients_get_a_holdout_decision_instead_of_the_message(make_engine, recorder):
    touch = Touch(
        name="welcome",
        trigger=EventTrigger(event="signed_up"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin",)),
        holdout=Holdout(share=0.5, by="account"),
    )
    engine = make_engine(recorder, touches=[touch])
    accounts = [Account(id=f"x{i}", name=f"X{i}") for i in range(40)]
    contacts = [
        Contact(id=f"x{i}-admin", account_id=f"x{i}", email=f"a@x{i}.test", role="admin")
        for i in range(40)
    ]
    engine.identify(*accounts, *contacts)
    for account in accounts:
        engine.track("signed_up", account_id=account.id)
    queued = engine.tick()
    held = [d for d in engine.last_decisions if d.outcome is Outcome.HOLDOUT]
    holdout = engine.program.holdout_of(touch)
    assert holdout is not None
    expected = {a.id for a in accounts if holdout.holds_out(f"{a.id}-admin", a.id)}
    assert {d.account_id for d in held} == expected
    assert 0 < len(expected) < 40 and queued == 40 - len(expected)
    assert all(d.checks[-1].name == "holdout" for d in held)
    with engine.store.read() as conn:
        kept = conn.execute(sa.select(schema.holdouts.c.account_id)).scalars().all()
        sent_to = set(conn.execute(sa.select(schema.outbox.c.account_id)).scalars().all())
        recorded = conn.execute(
            sa.select(sa.func.count()).where(schema.decisions.c.outcome == "holdout")
        ).scalar_one()
    assert set(kept) == expected and len(kept) == len(expected)
    assert sent_to.isdisjoint(expected)
    assert recorded == len(expected)
    # Another round (and the same events again) keeps the same groups and rows.
    engine.tick()
    with engine.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.holdouts)).scalar() == (
            len(expected)
        )
    # The timeline of a held-out account shows the decision.
    some = sorted(expected)[0]
    assert any(e.kind == "decision" and "holdout" in e.text for e in engine.timeline(some).entries)


def _held(conn, touch, account, at, index):
    conn.execute(
        sa.insert(schema.holdouts),
        {
            "idempotency_key": f"acme:{touch}:{account}:h{index}",
            "program": "acme",
            "touch": touch,
            "contact_id": f"{account}-admin",
            "account_id": account,
            "at": at,
        },
    )


def test_treatment_and_control_are_counted_against_a_reference_table(store, tmp_path):
    """Treated t0..t5: t0, t1, t2 report within 7 days, t3 after 8 days (too late).
    Held out h0..h3: h0 reports after 2 days, h1 before being held out (does not count),
    h2 after 10 days. So 3 of 6 against 1 of 4."""
    day = timedelta(days=1)
    with store.write() as conn:
        for i in range(6):
            _sent(conn, "welcome", f"t{i}", T0, i)
        for i in range(4):
            _held(conn, "welcome", f"h{i}", T0, i)
        for i, (account, after) in enumerate(
            [("t0", 1), ("t1", 2), ("t2", 6.5), ("t3", 8), ("h0", 2), ("h1", -1), ("h2", 10)]
        ):
            _event(conn, "report_created", account, T0 + after * day, i)
        _event(conn, "login", "h3", T0 + day, 99)
    program = Program(
        name="acme",
        touches=[
            Touch(
                name="welcome",
                trigger=None,
                channel="email",
                template="w",
                goal=GOAL,
                holdout=Holdout(share=0.4),
            ),
            Touch(name="resend", trigger=None, channel="email", template="r", goal=GOAL),
        ],
        base_dir=tmp_path,
    )
    [result] = holdout_results(program, store)
    assert (result.touch, result.treated, result.treated_converted) == ("welcome", 6, 3)
    assert (result.held_out, result.held_out_converted) == (4, 1)
    assert result.treatment_rate == 0.5 and result.control_rate == 0.25
    assert result.uplift == pytest.approx(newcombe(3, 6, 1, 4))
    assert result.warning is not None and "too small" in result.warning
    as_dict = result.as_dict()
    assert as_dict["control"] == {"n": 4, "converted": 1, "rate": 0.25}
    assert "Newcombe" in as_dict["method"]
    later = holdout_results(program, store, since=T0 + day)
    assert (later[0].treated, later[0].held_out) == (0, 0)


def test_the_cli_table_shows_both_groups_and_the_warning_under_it():
    from rich.console import Console

    from onetomany.cli.measure import holdouts_table

    console = Console(record=True, width=100)
    small = _result(treated=20, treated_converted=5, held_out=3, held_out_converted=0)
    console.print(holdouts_table((small,)))
    shown = console.export_text()
    assert "25.0%" in shown and "0.0%" in shown
    assert "t: too small to conclude" in shown


def test_explains_dry_run_decides_the_holdout_as_the_tick_does(make_engine, recorder):
    """``Engine.decide`` (what explain displays) runs the same settling as the tick."""
    touch = Touch(
        name="welcome",
        trigger=EventTrigger(event="signed_up"),
        channel="email",
        template="welcome",
        audience=Audience(roles=("admin",)),
        holdout=Holdout(share=0.5),
    )
    engine = make_engine(recorder, touches=[touch])
    accounts = [Account(id=f"y{i}", name=f"Y{i}") for i in range(12)]
    contacts = [
        Contact(id=f"d{i}", account_id=f"y{i}", email=f"d{i}@x.test", role="admin")
        for i in range(12)
    ]
    engine.identify(*accounts, *contacts)
    for account in accounts:
        engine.track("signed_up", account_id=account.id)
    dry = {d.contact_id: d.outcome for d in engine.decide("welcome", [c.id for c in contacts])}
    engine.tick()
    done = {d.contact_id: d.outcome for d in engine.last_decisions}
    assert dry == done
    assert set(dry.values()) == {Outcome.QUEUED, Outcome.HOLDOUT}
