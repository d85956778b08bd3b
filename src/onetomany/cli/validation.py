"""Checks that need more than the program file: every template compiled, then rendered.

``onetomany validate`` loads the program (which reports every configuration problem with its
file and key), then :func:`check_templates`:

* compiles every template of the folder whatever the data: each locale and persona variant,
  its includes (refused when they leave the folder), front matter and text, and each channel
  file, so a syntax error, an escaping ``mj-include`` or a template over its limits is found
  even where no contact would pick that variant;
* renders every touch for every sample contact in every bundled locale, the way the dispatcher
  would, and reports each template that fails, with the variable's name when one is missing.
  When the sources give no contact, it renders for a generated sample instead (see
  :func:`sample_profiles`), and says so.

Nothing is sent and the program's own store is not touched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from onetomany.cli.preview import DEFAULT_LOCALES, write_preview
from onetomany.errors import DeliveryError, MissingVariableError, TemplateError
from onetomany.model import Account, Contact
from onetomany.program import Program
from onetomany.templating import TemplateSet

__all__ = ["TemplateCheck", "check_templates", "render_problems", "sample_profiles"]


@attrs.frozen(kw_only=True)
class TemplateCheck:
    """What :func:`check_templates` found: ``problems`` (text, one per problem), how many
    contacts the templates were rendered for, and whether those were ``generated``."""

    problems: list[str]
    contacts: int
    generated: bool

    def summary(self) -> str:
        """How the templates were rendered, for a person: the contacts, or the sample."""
        if self.generated:
            return "no contacts in the sources; rendered with a generated sample"
        return f"rendered for {self.contacts} contact(s)"


def sample_profiles() -> list[tuple[Contact, Account]]:
    """A made-up contact (with an email address, a phone number and consent to every channel)
    and its account, for rendering when the sources give none. Neither has traits, but for the
    account's owner, whom a CSM task goes to."""
    account = Account(
        id="sample-account", name="Sample Account", traits={"owner": "owner@sample.test"}
    )
    contact = Contact(
        id="sample-contact",
        account_id=account.id,
        name="Sam Sample",
        email="sam@sample.test",
        phone="+14155550100",
    )
    return [(contact, account)]


def check_templates(
    program: Program,
    samples: Iterable[tuple[Contact, Account | None]],
    *,
    templates: TemplateSet,
    locales: Sequence[str] = DEFAULT_LOCALES,
) -> TemplateCheck:
    """Compile every template of ``templates``, then render every touch of ``program`` for
    ``samples`` (or, when there are none, :func:`sample_profiles`) in each of ``locales``.

    A generated sample has none of the traits real profiles have, so an undefined variable is
    not reported for it: only what fails whatever the data.
    """
    problems = dict.fromkeys(str(exc) for exc in templates.problems())
    contacts = list(samples)
    generated = not contacts
    if generated:
        contacts = list(sample_profiles())
    rendered = render_problems(
        program,
        contacts,
        templates=templates,
        locales=locales,
        report_missing=not generated,
    )
    for problem in rendered:
        if not any(known in problem for known in problems):
            problems[problem] = None
    return TemplateCheck(problems=list(problems), contacts=len(contacts), generated=generated)


def render_problems(
    program: Program,
    samples: Iterable[tuple[Contact, Account | None]],
    *,
    templates: TemplateSet,
    locales: Sequence[str] = DEFAULT_LOCALES,
    report_missing: bool = True,
) -> list[str]:
    """Every distinct template failure over ``samples`` x ``locales`` x touches, as text
    (without undefined variables when ``report_missing`` is false)."""
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
                    except MissingVariableError as exc:
                        if report_missing:
                            problems[f"touches.{touch.name}: {exc}"] = None
                    except TemplateError as exc:
                        problems[f"touches.{touch.name}: {exc}"] = None
                    except DeliveryError as exc:
                        # Only template trouble counts here; a contact without a phone
                        # number is the data's business, not the program's.
                        cause = exc.__cause__
                        if isinstance(cause, MissingVariableError) and not report_missing:
                            continue
                        if isinstance(cause, TemplateError) or "segment" in str(exc):
                            problems[f"touches.{touch.name}: {exc}"] = None
    return list(problems)
