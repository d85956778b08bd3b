"""Helpers shared by the template engine tests (imported by name: pytest puts this folder on
sys.path, and the module name is unique across the test tree)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mjml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The ``write`` fixture: write({relative path: text}) into the template folder, returns it.
WriteFiles = Callable[..., Path]


def template(body: str, *, subject: str = "Hello {{ contact.first_name }}", **fields: str) -> str:
    """A template file: front matter with ``subject`` and ``fields``, then ``body``."""
    # A JSON string is a valid TOML basic string.
    lines = [
        f"{key} = {json.dumps(value)}" for key, value in {"subject": subject, **fields}.items()
    ]
    return "+++\n" + "\n".join(lines) + "\n+++\n" + body


def section(content: str) -> str:
    """One full-width section holding ``content`` (column children, e.g. ``<mj-text>``)."""
    return f"<mj-section><mj-column>{content}</mj-column></mj-section>"


def page(*sections: str, head: str = "") -> str:
    """A whole MJML document around ``sections``."""
    head = f"<mj-head>{head}</mj-head>" if head else ""
    return f"<mjml>{head}<mj-body>{''.join(sections)}</mj-body></mjml>"


def reference_html(folder: Path, name: str, context: Mapping[str, Any]) -> str:
    """The obviously-correct way: render Jinja on the MJML source (and on each included file),
    then compile MJML. Independent of the package's own code on purpose."""
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
    source = (folder / f"{name}.mjml").read_text(encoding="utf-8")
    body = source.split("+++\n", 2)[2]

    def load(path: str) -> str:
        return env.from_string((folder / path).read_text(encoding="utf-8")).render(context)

    return mjml.mjml2html(env.from_string(body).render(context), include_loader=load)
