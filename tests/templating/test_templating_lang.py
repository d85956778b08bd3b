"""The HTML's ``lang``: the locale the message is rendered for, unless the author set one."""

from __future__ import annotations

import re

import pytest
from templating_support import page, section, template

from onetomany.templating import TemplateSet
from onetomany.templating.templates import with_lang

BODY = page(section("<mj-text>Hello {{ contact.first_name }}</mj-text>"))
# A Jinja tag MJML would mangle (a whole section built by a loop): rendered jinja-first.
JINJA_FIRST = page(
    "{% for n in [1, 2] %}"
    + section("<mj-text>{{ n }} for {{ contact.first_name }}</mj-text>")
    + "{% endfor %}"
)


def _lang(html: str) -> str:
    found = re.search(r'<html lang="([^"]*)"', html)
    assert found is not None, html[:200]
    return found.group(1)


@pytest.mark.parametrize("body", [BODY, JINJA_FIRST], ids=["mjml-first", "jinja-first"])
@pytest.mark.parametrize(("locale", "lang"), [("en", "en"), ("pt_br", "pt-BR"), ("id", "id")])
def test_the_html_lang_is_the_locale_rendered_for(write, context, body, locale, lang):
    templates = TemplateSet(write(**{"welcome.mjml": template(body)}))
    assert _lang(templates.render("welcome", context, locale=locale).html) == lang


def test_a_locale_variant_and_the_default_each_carry_the_contacts_locale(write, context):
    templates = TemplateSet(
        write(**{"welcome.mjml": template(BODY), "welcome.pt-BR.mjml": template(BODY)})
    )
    assert _lang(templates.render("welcome", context, locale="pt-BR").html) == "pt-BR"
    assert _lang(templates.render("welcome", context, locale="en-GB").html) == "en-GB"


def test_the_authors_lang_on_the_mjml_root_is_kept(write, context):
    body = BODY.replace("<mjml>", '<mjml lang="en" dir="ltr">')
    templates = TemplateSet(write(**{"welcome.mjml": template(body)}))
    html = templates.render("welcome", context, locale="pt-BR").html
    assert _lang(html) == "en"
    assert html.count("<html") == 1


def test_without_a_locale_mjml_s_undetermined_lang_stays(write, context):
    templates = TemplateSet(write(**{"welcome.mjml": template(BODY)}))
    assert _lang(templates.render("welcome", context).html) == "und"


def test_with_lang_touches_only_the_html_tag():
    html = '<!doctype html><html lang="und" dir="auto"><body><p lang="und">x</p></body></html>'
    assert with_lang(html, "id") == html.replace('<html lang="und"', '<html lang="id"', 1)
    assert with_lang("<p>no html tag</p>", "id") == "<p>no html tag</p>"
