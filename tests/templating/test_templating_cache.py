"""MJML is compiled once per distinct content (template source plus included files), and the
send path (``TemplateSet.render``) resolves and loads a template once per check interval."""

from __future__ import annotations

from typing import Any

import mjml
import pytest
from templating_support import WriteFiles, page, section, template

from onetomany.templating import IncludeLoader, TemplateSet


class CountingCompiler:
    """Wraps mjml2html and counts calls, injected through TemplateSet(compile_mjml=...)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, input: str, /, *, include_loader: IncludeLoader | None = None) -> str:
        self.calls += 1
        return mjml.mjml2html(input, include_loader=include_loader)


@pytest.fixture
def compiler() -> CountingCompiler:
    return CountingCompiler()


@pytest.fixture
def templates(write: WriteFiles, compiler: CountingCompiler) -> TemplateSet:
    body = page(
        '<mj-include path="partials/header.mjml" />',
        section("<mj-text>Hi {{ contact.first_name }}</mj-text>"),
    )
    folder = write(
        {
            "welcome.mjml": template(body),
            "partials/header.mjml": section("<mj-text>Header</mj-text>"),
        }
    )
    return TemplateSet(folder, compile_mjml=compiler)


def test_compiling_twice_calls_mjml_once(
    templates: TemplateSet, compiler: CountingCompiler
) -> None:
    templates.check("welcome")
    templates.check("welcome")

    assert compiler.calls == 1


def test_rendering_does_not_call_mjml(
    templates: TemplateSet, compiler: CountingCompiler, context: dict[str, Any]
) -> None:
    for first_name in ["Ann", "Bo", "Cy"]:
        contact = {**context["contact"], "first_name": first_name}
        assert (
            f"Hi {first_name}" in templates.render("welcome", {**context, "contact": contact}).html
        )

    assert compiler.calls == 1


def test_changed_include_recompiles_and_reverting_hits_the_cache(
    templates: TemplateSet, compiler: CountingCompiler, context: dict[str, Any]
) -> None:
    header = templates.folder / "partials/header.mjml"
    original = header.read_text(encoding="utf-8")
    templates.check("welcome")

    header.write_text(section("<mj-text>Changed</mj-text>"), encoding="utf-8")
    assert "Changed" in templates.render("welcome", context).html
    assert compiler.calls == 2

    header.write_text(original, encoding="utf-8")
    templates.refresh()
    assert "Header" in templates.render("welcome", context).html
    assert compiler.calls == 2  # same source + same include contents: cached HTML reused


def test_changed_template_recompiles(
    templates: TemplateSet, compiler: CountingCompiler, context: dict[str, Any]
) -> None:
    templates.check("welcome")
    path = templates.folder / "welcome.mjml"
    path.write_text(path.read_text(encoding="utf-8").replace("Hi", "Hello"), encoding="utf-8")

    assert "Hello Ann" in templates.render("welcome", context).html
    assert compiler.calls == 2


def test_front_matter_edit_does_not_recompile_mjml(
    templates: TemplateSet, compiler: CountingCompiler, context: dict[str, Any]
) -> None:
    templates.check("welcome")
    path = templates.folder / "welcome.mjml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("Hello {{", "Howdy {{"), encoding="utf-8"
    )

    assert templates.render("welcome", context).subject == "Howdy Ann"
    assert compiler.calls == 1  # the MJML body did not change


def test_identical_templates_share_one_compile(
    write: WriteFiles, compiler: CountingCompiler
) -> None:
    body = page(section("<mj-text>Same</mj-text>"))
    folder = write({"a.mjml": template(body), "b.mjml": template(body, subject="Other")})
    templates = TemplateSet(folder, compile_mjml=compiler)

    templates.check("a")
    templates.check("b")

    assert compiler.calls == 1


def test_render_reads_the_files_at_most_once_per_interval(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    body = page(section("<mj-text>Hi {{ contact.first_name }}</mj-text>"))
    folder = write({"welcome.mjml": template(body)})
    templates = TemplateSet(folder, recheck_every=3600)
    assert "Hi Ann" in templates.render("welcome", context).html
    path = folder / "welcome.mjml"
    path.write_text(template(body.replace("Hi", "Hello")), encoding="utf-8")
    (folder / "welcome.pt-BR.mjml").write_text(
        template(body.replace("Hi", "Olá")), encoding="utf-8"
    )

    # Within the interval, the resolved variant and its compiled template are reused.
    assert "Hi Ann" in templates.render("welcome", context).html
    # A lookup not made before resolves now.
    assert "Olá Ann" in templates.render("welcome", context, locale="pt-BR").html
    # What is not the send path reads the files every time.
    assert "Hello" in (templates.compiled("welcome").compiled_html or "")

    templates.refresh()
    assert "Hello Ann" in templates.render("welcome", context).html
    path.unlink()
    assert "Hello Ann" in templates.render("welcome", context).html  # not read again


def test_render_checks_the_files_again_after_the_interval(
    write: WriteFiles, context: dict[str, Any]
) -> None:
    body = page(section("<mj-text>Hi {{ contact.first_name }}</mj-text>"))
    folder = write({"welcome.mjml": template(body)})
    templates = TemplateSet(folder, recheck_every=0)
    assert "Hi Ann" in templates.render("welcome", context).html
    (folder / "welcome.mjml").write_text(template(body.replace("Hi", "Hello")), "utf-8")
    assert "Hello Ann" in templates.render("welcome", context).html
