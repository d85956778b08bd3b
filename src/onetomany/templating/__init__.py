"""The template engine: MJML email/in-app templates with Jinja, rendered in a sandbox.

A program keeps its templates in one folder (see :mod:`onetomany.templating.templates` for the
layout). :class:`TemplateSet` compiles each template once, MJML included, and renders it per
recipient into a :class:`Rendered` (subject, preheader, HTML, plain text, sender, reply-to, URL,
in-app title). Templates have locale and persona variants (``welcome.sponsor.pt-BR.mjml``) and
channel files (``.sms.txt``, ``.whatsapp.toml``, ``.whatsapp.txt``, ``.inapp.txt``); see
``docs/templates.md``. Every problem is a :class:`~onetomany.errors.TemplateError` naming the file
and, when known, the line.
"""

from onetomany.templating.channels import (
    SmsTemplate,
    TextTemplate,
    WhatsAppRendered,
    WhatsAppTemplate,
)
from onetomany.templating.compiled import CompiledTemplate, Rendered, Strategy
from onetomany.templating.locales import canonical_locale, locale_filters
from onetomany.templating.mjml import IncludeLoader, MjmlCompiler
from onetomany.templating.templates import TemplateSet
from onetomany.templating.text import html_to_text

__all__ = [
    "CompiledTemplate",
    "IncludeLoader",
    "MjmlCompiler",
    "Rendered",
    "SmsTemplate",
    "Strategy",
    "TemplateSet",
    "TextTemplate",
    "WhatsAppRendered",
    "WhatsAppTemplate",
    "canonical_locale",
    "html_to_text",
    "locale_filters",
]
