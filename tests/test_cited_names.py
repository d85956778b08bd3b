"""Every ``onetomany`` name the docs and docstrings cite can be imported.

Citations are Sphinx-style roles (``:class:`~onetomany.X```, ``:meth:`Engine.x
<onetomany.Engine.x>```), backticked dotted names (```onetomany.store.Store(url)```), and the
``from onetomany... import ...`` lines of the Markdown pages.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import onetomany

ROOT = Path(__file__).resolve().parent.parent
ROLE = re.compile(r":[a-z]+:`~?(?:[^`<]*<)?(onetomany(?:\.\w+)+)>?`")
TICKED = re.compile(r"`+~?(onetomany(?:\.\w+)+)(?=[`(\[])")
FROM_IMPORT = re.compile(r"^\s*from (onetomany(?:\.\w+)*) import ([\w ,]+)$", re.MULTILINE)


def sources() -> list[Path]:
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


def cited() -> dict[str, set[str]]:
    """Each cited dotted name, with the files citing it."""
    names: dict[str, set[str]] = {}
    docstrings = sorted((ROOT / "src" / "onetomany").rglob("*.py"))
    for path in [*sources(), *docstrings]:
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        found = [m.group(1) for pattern in (ROLE, TICKED) for m in pattern.finditer(text)]
        if path.suffix == ".md":
            for module, imported in FROM_IMPORT.findall(text):
                found += [f"{module}.{name.strip()}" for name in imported.split(",")]
        for name in found:
            names.setdefault(name, set()).add(where)
    return names


def resolve(dotted: str) -> object:
    """The object ``dotted`` names: its longest importable module, then attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[end:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(dotted)


CITED = cited()


def test_the_collector_finds_citations():
    assert {"onetomany.Engine", "onetomany.FrozenClock", "onetomany.errors.SourceRow"} <= set(CITED)


@pytest.mark.parametrize("name", sorted(CITED))
def test_a_cited_name_resolves(name):
    try:
        resolve(name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{name}, cited in {', '.join(sorted(CITED[name]))}, does not import: {exc}")


def test_import_onetomany_gives_what_a_host_uses():
    from onetomany.engine import Engine
    from onetomany.errors import OnetomanyError
    from onetomany.program import load_program
    from onetomany.store import InboxItem

    assert (onetomany.Engine, onetomany.load_program, onetomany.InboxItem) == (
        Engine,
        load_program,
        InboxItem,
    )
    errors = {
        name
        for name, value in vars(importlib.import_module("onetomany.errors")).items()
        if isinstance(value, type) and issubclass(value, OnetomanyError)
    }
    assert errors <= set(onetomany.__all__)
    for name in onetomany.__all__:
        assert getattr(onetomany, name) is not None
    assert set(onetomany.__all__) <= set(dir(onetomany))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = onetomany.no_such_name  # type: ignore[attr-defined]


def test_import_onetomany_stays_light():
    """The engine (SQLAlchemy, Jinja, MJML) loads on first use of ``onetomany.Engine``."""
    heavy = ("onetomany.engine", "onetomany.store", "sqlalchemy", "jinja2")
    code = f"import sys, onetomany; print(sorted(set(sys.modules) & {set(heavy)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
