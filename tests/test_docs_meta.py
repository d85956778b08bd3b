"""Meta-tests that keep the docs honest (as datasette does).

- every hook in :mod:`onetomany.plugins.hookspecs` appears in docs/plugins/hooks.md with its exact
  signature;
- every hook has a test named ``test_hook_<hook name>`` under tests/ or a plugin's tests/;
- every page that mkdocs.yml lists exists.
"""

import inspect
import re
from pathlib import Path

import pytest

from onetomany.plugins import hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS_PAGE = DOCS / "plugins" / "hooks.md"
MKDOCS = ROOT / "mkdocs.yml"

HOOKS = sorted(
    name
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("onetomany_")
)


class _Source(str):
    """An annotation kept as source text; its repr is the text itself, without quotes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def hook_signature(name: str) -> str:
    """``onetomany_x(register: Register[type[Channel]]) -> None``, as written in hookspecs.

    hookspecs uses ``from __future__ import annotations``, so every annotation is a string;
    ``inspect`` would quote it, so each is wrapped in a type whose repr is the bare text.
    """

    def bare(annotation: object) -> object:
        return _Source(annotation) if isinstance(annotation, str) else annotation

    signature = inspect.signature(getattr(hookspecs, name))
    signature = signature.replace(
        parameters=[
            p.replace(annotation=bare(p.annotation)) for p in signature.parameters.values()
        ],
        return_annotation=bare(signature.return_annotation),
    )
    return f"{name}{signature}"


def test_there_are_hooks_to_check():
    assert "onetomany_register_channels" in HOOKS


def test_hook_signature_reads_as_in_the_source():
    assert (
        hook_signature("onetomany_register_channels")
        == "onetomany_register_channels(register: Register[type[Channel]]) -> None"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    page = HOOKS_PAGE.read_text(encoding="utf-8")
    assert f"## {hook}" in page, f"docs/plugins/hooks.md has no section for {hook}"
    signature = hook_signature(hook)
    assert signature in page, (
        f"docs/plugins/hooks.md does not show the signature of {hook} as it is now:\n  {signature}"
    )


def _test_sources() -> list[Path]:
    files = list((ROOT / "tests").rglob("*.py"))
    for tests in ROOT.glob("plugins/*/*/tests"):
        files.extend(tests.rglob("*.py"))
    return files


def test_every_hook_has_a_test():
    text = "\n".join(path.read_text(encoding="utf-8") for path in _test_sources())
    missing = [
        hook for hook in HOOKS if not re.search(rf"\bdef test_hook_{re.escape(hook)}\s*\(", text)
    ]
    assert not missing, "hooks without a test_hook_<name> test: " + ", ".join(missing)


def _nav_pages() -> list[str]:
    """Every ``.md`` page named in the ``nav`` of mkdocs.yml (no YAML parser needed)."""
    nav = MKDOCS.read_text(encoding="utf-8").split("\nnav:", 1)[1]
    block = re.split(r"\n(?=\S)", nav, maxsplit=1)[0]
    return re.findall(r"([\w./-]+\.md)\s*$", block, flags=re.MULTILINE)


def test_mkdocs_nav_lists_pages():
    assert "index.md" in _nav_pages()


@pytest.mark.parametrize("page", _nav_pages() if MKDOCS.exists() else [])
def test_every_page_in_the_nav_exists(page):
    assert (DOCS / page).is_file(), f"mkdocs.yml lists {page}, which is not in docs/"
