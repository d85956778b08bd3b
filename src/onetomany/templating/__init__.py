"""The template engine: MJML email/in-app templates with Jinja, rendered in a sandbox.

A program keeps its templates in one folder (see :mod:`onetomany.templating.templates` for the
layout). :class:`TemplateSet` compiles each template once, MJML included, and renders it per
recipient into a :class:`Rendered` (subject, preheader, HTML, plain text, sender, reply-to, URL).
Every problem is a :class:`~onetomany.errors.TemplateError` naming the file and, when known, the
line.
"""

from onetomany.templating.compiled import CompiledTemplate, Rendered, Strategy
from onetomany.templating.mjml import IncludeLoader, MjmlCompiler
from onetomany.templating.templates import TemplateSet
from onetomany.templating.text import html_to_text

__all__ = [
    "CompiledTemplate",
    "IncludeLoader",
    "MjmlCompiler",
    "Rendered",
    "Strategy",
    "TemplateSet",
    "html_to_text",
]
