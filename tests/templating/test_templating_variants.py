"""Locale and persona variants, the locale-aware filters, SMS counting."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from hypothesis import given
from hypothesis import strategies as st
from templating_support import WriteFiles, page, section, template

from onetomany.delivery.sms import GSM7, UCS2, count_segments, encoding_of
from onetomany.errors import TemplateError
from onetomany.templating import TemplateSet
from onetomany.templating.locales import babel_locale, canonical_locale, locale_chain


def _mjml(word: str) -> str:
    return template(page(section(f"<mj-text>{word}</mj-text>")), subject=word)


ALL = ["", ".pt-BR", ".pt", ".id", ".sponsor", ".sponsor.pt-BR", ".sponsor.pt"]


@pytest.fixture
def variants(write: WriteFiles) -> TemplateSet:
    files = {f"welcome{suffix}.mjml": _mjml(f"welcome{suffix}") for suffix in ALL}
    files["welcome.pt-BR.txt"] = "texto {{ contact.first_name }}"
    files["welcome.txt"] = "text {{ contact.first_name }}"
    files["welcome.sms.txt"] = "sms"
    files["welcome.pt.sms.txt"] = "sms pt"
    files["other.sms.txt"] = "only sms"
    return TemplateSet(write(files))


@pytest.mark.parametrize(
    ("locale", "persona", "expected"),
    [
        ("pt-BR", "sponsor", "welcome.sponsor.pt-BR"),
        ("pt-PT", "sponsor", "welcome.sponsor.pt"),
        ("pt_br", "sponsor", "welcome.sponsor.pt-BR"),
        ("id", "sponsor", "welcome.sponsor"),
        ("pt-BR", None, "welcome.pt-BR"),
        ("pt-PT", "analyst", "welcome.pt"),
        ("id", "analyst", "welcome.id"),
        ("en", None, "welcome"),
        (None, None, "welcome"),
        (None, "sponsor", "welcome.sponsor"),
        ("pt-BR", "../etc", "welcome.pt-BR"),
    ],
)
def test_resolution_order(
    variants: TemplateSet, locale: str | None, persona: str | None, expected: str
) -> None:
    assert variants.resolve("welcome", locale=locale, persona=persona) == expected


def test_names_are_base_names(variants: TemplateSet) -> None:
    assert variants.names() == ["other", "welcome"]
    assert "welcome" in variants and "welcome.pt-BR" not in variants
    assert variants.variants("welcome") == sorted(f"welcome{suffix}" for suffix in ALL)
    assert variants.variants("welcome", ".sms.txt") == ["welcome", "welcome.pt"]


def test_render_uses_the_variant_and_its_own_text(
    variants: TemplateSet, context: dict[str, Any]
) -> None:
    rendered = variants.render("welcome", context, locale="pt-BR")
    assert rendered.subject == "welcome.pt-BR"
    assert rendered.text == "texto Ann"
    # welcome.pt has no .txt of its own: its text is derived, never the default's welcome.txt
    derived = variants.render("welcome", context, locale="pt-PT")
    assert derived.text == "welcome.pt"
    assert variants.render("welcome", context).text == "text Ann"


def test_channel_files_resolve_on_their_own(variants: TemplateSet) -> None:
    sms = variants.sms("welcome", locale="pt-BR", persona="sponsor")
    assert sms is not None and sms.path == "welcome.pt.sms.txt"
    default = variants.sms("welcome", locale="id")
    assert default is not None and default.path == "welcome.sms.txt"
    assert variants.whatsapp("welcome", locale="id") is None


def test_template_without_mjml_is_reported(variants: TemplateSet) -> None:
    with pytest.raises(TemplateError, match=r"'other' has no \.mjml file"):
        variants.resolve("other", locale="en", persona=None)
    variants.check("other")


def test_malformed_locale_names_it(variants: TemplateSet, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="malformed locale 'pt BR!'"):
        variants.render("welcome", context, locale="pt BR!")


def test_check_compiles_every_variant(write: WriteFiles) -> None:
    folder = write(
        {
            "welcome.mjml": _mjml("ok"),
            "welcome.id.mjml": _mjml("{{ broken"),
        }
    )
    with pytest.raises(TemplateError, match=r"welcome\.id\.mjml"):
        TemplateSet(folder).check("welcome")


def test_locale_helpers() -> None:
    assert canonical_locale("pt_br") == "pt-BR"
    assert canonical_locale("zh-hant-tw") == "zh-Hant-TW"
    assert locale_chain("zh-Hant-TW") == ["zh-Hant-TW", "zh-Hant", "zh"]
    assert str(babel_locale("pt-XX")) == "pt"  # unknown region: the language
    assert str(babel_locale("xx")) == "en"  # unknown language: English
    for bad in ("", "p", "pt BR", "portuguese!", "12"):
        for _ in range(2):  # canonical forms are kept; a refusal is given every time
            with pytest.raises(TemplateError, match="malformed locale") as refused:
                canonical_locale(bad, template="welcome.mjml")
            assert "welcome.mjml" in str(refused.value)
    with pytest.raises(TemplateError, match="malformed locale 42"):
        canonical_locale(42)  # type: ignore[arg-type]


# The locale filters are Babel's formatting with the render's locale, timezone and currency.
# CLDR's data changes between Babel releases (2.19 dropped the leading zero of Indonesian short
# dates), so these tests compare each filter with Babel itself, called with the arguments the
# filter should pass, and check exact text only where CLDR has not moved for years: grouping
# and decimal signs, the local hour, the day of the month, where the currency symbol goes.
FILTERS = (
    "{{ when|date('long') }}|{{ when|datetime('short') }}|{{ big|number }}|{{ ratio|percent }}|"
    "{{ big|money('BRL') }}|{{ '2026-11-02'|date }}"
)
WHEN = datetime(2026, 11, 2, 2, 30, tzinfo=UTC)
BIG = Decimal("1234.5")


def _babel_says(locale: str, zone: str) -> list[str]:
    """FILTERS' values formatted by Babel directly in ``locale`` and ``zone``."""
    where = Locale.parse(locale)
    tz = ZoneInfo(zone)
    return [
        format_date(WHEN.astimezone(tz).date(), "long", locale=where),
        format_datetime(WHEN, "short", tzinfo=tz, locale=where),
        format_decimal(BIG, locale=where),
        format_percent(0.25, locale=where),
        format_currency(BIG, "BRL", locale=where),
        format_date(date(2026, 11, 2), "medium", locale=where),
    ]


@pytest.mark.parametrize(
    ("locale", "zone", "babel", "local_time", "grouped"),
    [
        # 02:30 UTC is 23:30 on 1 November in Sao Paulo and 09:30 on 2 November in Jakarta.
        ("pt-BR", "America/Sao_Paulo", "pt_BR", (1, 23, 30), "1.234,5"),
        ("id", "Asia/Jakarta", "id", (2, 9, 30), "1.234,5"),
        ("en", "UTC", "en", (2, 2, 30), "1,234.5"),
        # A region Babel does not know falls back to the language.
        ("pt-XX", "UTC", "pt", (2, 2, 30), "1.234,5"),
    ],
)
def test_locale_filters(
    write: WriteFiles,
    locale: str,
    zone: str,
    babel: str,
    local_time: tuple[int, int, int],
    grouped: str,
) -> None:
    folder = write({"f.mjml": template(page(section("<mj-text>x</mj-text>")), subject=FILTERS)})
    context = {
        "when": WHEN,
        "big": BIG,
        "ratio": 0.25,
        # The bound locale wins over the contact's; the contact's timezone is the one used.
        "contact": {"locale": "en", "timezone": zone},
    }
    rendered = TemplateSet(folder).render("f", context, locale=locale).subject.split("|")
    assert rendered == _babel_says(babel, zone)

    long_date, short, number, percent, money, iso_date = rendered
    day, hour, minute = local_time
    assert re.search(rf"(?<!\d){day}(?!\d)", long_date)
    clock = re.search(r"(\d{1,2})[.:](\d{2})", short)
    assert clock is not None and (int(clock[1]), int(clock[2])) == (hour, minute)
    assert number == grouped
    assert percent.replace("\xa0", "") == "25%"
    assert "R$" in money and (money.endswith(f"{grouped}0") or money.startswith(f"{grouped}0"))
    if locale != "en":  # English writes the symbol first, glued: R$1,234.50
        assert money.startswith("R$")
    assert re.search(r"(?<!\d)2(?!\d)", iso_date)  # a plain date is never moved by a timezone


def test_money_passes_the_currency(write: WriteFiles) -> None:
    subject = "{{ 5|money('usd') }}|{{ 5|money('EUR') }}|{{ 5|money('JPY') }}"
    folder = write({"f.mjml": template(page(section("<mj-text>x</mj-text>")), subject=subject)})
    rendered = TemplateSet(folder).render("f", {}, locale="en").subject.split("|")
    assert rendered == [format_currency(5, code, locale="en") for code in ("USD", "EUR", "JPY")]
    assert [rendered[0][0], rendered[1][0]] == ["$", "€"]


def test_filters_read_the_contact_locale_without_a_bound_one(write: WriteFiles) -> None:
    folder = write(
        {
            "f.mjml": template(
                page(section("<mj-text>x</mj-text>")), subject="{{ 0.5|percent }} {{ 1234|number }}"
            )
        }
    )
    context = {"contact": {"locale": "pt-BR", "timezone": "UTC"}}
    rendered = TemplateSet(folder).render("f", context).subject
    brazil = Locale.parse("pt_BR")
    assert rendered == f"{format_percent(0.5, locale=brazil)} {format_decimal(1234, locale=brazil)}"
    assert rendered.endswith(" 1.234")


def test_filter_errors_name_the_template(write: WriteFiles) -> None:
    folder = write(
        {
            "f.mjml": template(
                page(section("<mj-text>x</mj-text>")), subject="{{ 'x'|money('BRL') }}"
            )
        }
    )
    with pytest.raises(TemplateError, match=r"f\.mjml:2.*not a number"):
        TemplateSet(folder).render("f", {}, locale="en")


# --- SMS segments ------------------------------------------------------------------------

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


@given(st.text(alphabet=GSM_BASIC, max_size=1000))
def test_pure_gsm7_text(text: str) -> None:
    counted = count_segments(text)
    assert counted.encoding == GSM7
    assert counted.units == len(text)
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert counted.segments == expected


@given(st.text(alphabet=GSM_BASIC, max_size=400), st.text(alphabet="{}[]~\\^|€", max_size=100))
def test_extended_characters_count_twice(basic: str, extended: str) -> None:
    counted = count_segments(basic + extended)
    assert counted.encoding == GSM7
    assert counted.units == len(basic) + 2 * len(extended)
    if counted.units <= 160:
        assert counted.segments == 1
    else:
        # An escape pair never straddles two parts, so at most one extra part.
        assert math.ceil(counted.units / 153) <= counted.segments <= math.ceil(counted.units / 152)


@given(
    st.text(alphabet=GSM_BASIC, max_size=300),
    st.characters(blacklist_characters=GSM_BASIC + "{}[]~\\^|€\f", codec="utf-16"),
    st.text(alphabet=GSM_BASIC, max_size=300),
)
def test_any_other_character_switches_to_ucs2(before: str, other: str, after: str) -> None:
    text = before + other + after
    assert encoding_of(text) == UCS2
    counted = count_segments(text)
    assert counted.encoding == UCS2
    units = len(text.encode("utf-16-le")) // 2
    assert counted.units == units
    if units <= 70:
        assert counted.segments == 1
    elif units == len(text):  # no surrogate pairs
        assert counted.segments == math.ceil(units / 67)


def test_sms_examples() -> None:
    assert count_segments("").segments == 1
    assert count_segments("a" * 160).segments == 1
    assert count_segments("a" * 161).segments == 2
    assert count_segments("€" * 80).segments == 1
    assert count_segments("€" * 81).segments == 2
    assert count_segments("ã" * 70).segments == 1
    assert count_segments("ã" * 71).segments == 2


def test_bundled_templates_are_valid() -> None:
    folder = Path(__file__).resolve().parents[2] / "examples" / "onboarding" / "templates"
    templates = TemplateSet(folder)
    # CSM tasks are written for the CSM, in one language; SMS-only touches have no .mjml.
    internal = {"high_touch_intro", "setup_overdue", "welcome_call", "detractor_call"}
    assert {"day_recap", "first_report_tip", "welcome", "nps"} <= set(templates.names())
    for name in templates.names():
        if templates.find(name, ".mjml", locale="en", persona=None) is None:
            continue  # an SMS-only touch: its .sms.txt files are checked when rendered
        templates.check(name)
        for locale in ("en", "pt-BR", "id"):
            expected = "" if locale == "en" or name in internal else f".{locale}"
            assert templates.resolve(name, locale=locale, persona=None).endswith(expected)


def test_filter_on_a_missing_variable_names_it(write: WriteFiles) -> None:
    folder = write(
        {"f.mjml": template(page(section("<mj-text>x</mj-text>")), subject="{{ nope|date }}")}
    )
    with pytest.raises(TemplateError, match="undefined variable 'nope'"):
        TemplateSet(folder).render("f", {}, locale="en")
