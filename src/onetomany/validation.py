"""Checks that need more than the program file: every template rendered for sample profiles.

``onetomany validate`` loads the program (which reports every configuration problem with its
file and key), then renders every touch for every sample contact in every bundled locale, the
way the dispatcher would, and reports each template that fails, with the variable's name when
one is missing. Nothing is sent and the program's own store is not touched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from onetomany.errors import DeliveryError, TemplateError
from onetomany.model import Account, Contact
from onetomany.preview import DEFAULT_LOCALES, write_preview
from onetomany.program import Program
from onetomany.templating import TemplateSet

__all__ = ["render_problems"]


def render_problems(
    program: Program,
    samples: Iterable[tuple[Contact, Account | None]],
    *,
    templates: TemplateSet,
    locales: Sequence[str] = DEFAULT_LOCALES,
) -> list[str]:
    """Every distinct template failure over ``samples`` x ``locales`` x touches, as text."""
    problems: dict[str, None] = {}  # insertion-ordered set
    with tempfile.TemporaryDirectory(prefix="onetomany-validate-") as scratch:
        for contact, account in samples:
            for locale in locales:
                for touch in program.touches:
                    try:
                        write_preview(
                            program,
                            touch.name,
                            contact=contact,
                            account=account,
                            locale=locale,
                            out_dir=Path(scratch),
                            templates=templates,
                        )
                    except TemplateError as exc:
                        problems[f"touches.{touch.name}: {exc}"] = None
                    except DeliveryError as exc:
                        # Only template trouble counts here; a contact without a phone
                        # number is the data's business, not the program's.
                        if isinstance(exc.__cause__, TemplateError) or "segment" in str(exc):
                            problems[f"touches.{touch.name}: {exc}"] = None
    return list(problems)
