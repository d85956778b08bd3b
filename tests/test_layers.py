"""The layers of docs/architecture.md, enforced: each package imports only what its row allows.

Reads every module of the core with :mod:`ast` (imports under ``if TYPE_CHECKING:`` count too:
a type-only import still ties one layer to another), so a step out of line fails here with the
module and the import, rather than showing up later as an import cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import onetomany

SRC = Path(onetomany.__file__).parent

# What each part of the core may import from the core (its own package always allowed).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "model": {"errors"},
    "rules": {"errors", "model"},
    "templating": {"errors", "model"},
    "store": {"errors", "model", "rules"},
    "plugins": {"errors", "model", "rules", "store", "delivery", "onetomany"},
    "program": {"errors", "model", "rules", "plugins", "templating", "delivery"},
    "delivery": {"errors", "model", "rules", "store", "templating", "plugins", "program"},
    "tracking": {"errors", "model", "rules", "store", "program", "delivery"},
    "triggers": {"errors", "model", "rules", "store", "program", "tracking"},
    "engine": {"errors", "model", "rules", "store", "templating", "plugins", "program"}
    | {"delivery", "tracking", "triggers"},
    "testing": {"errors", "model", "rules", "store", "plugins", "delivery", "program"},
    "cli": {"errors", "model", "rules", "store", "templating", "plugins", "program"}
    | {"delivery", "tracking", "triggers", "engine", "onetomany"},
    "onetomany": set(),  # the package's __init__ re-exports the public API from every layer
}
# The bundled plugin distributions: the core never imports one.
DISTRIBUTIONS = ("onetomany_smtp", "onetomany_csv", "onetomany_webhook")
# Where SQLAlchemy may be imported outside a type check: the store, and the segment compiler.
SQL_OUTSIDE_STORE = {"store/segments.py"}


def _part(path: Path) -> str:
    relative = path.relative_to(SRC)
    if relative.name == "__init__.py" and relative.parent == Path("."):
        return "onetomany"
    return relative.parts[0].removesuffix(".py")


def _imports(tree: ast.Module) -> Iterator[tuple[str, int, bool]]:
    """(module imported, line, whether only under TYPE_CHECKING)."""
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(child) for inner in node.body for child in ast.walk(inner))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "onetomany":
                for alias in node.names:
                    yield f"onetomany.{alias.name}", node.lineno, id(node) in typing_only
            else:
                yield node.module, node.lineno, id(node) in typing_only
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in typing_only


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def _top_level_target(module: str) -> str | None:
    if module == "onetomany":
        return "onetomany"
    if not module.startswith("onetomany."):
        return None
    name = module.split(".")[1]
    # ``from onetomany import X`` of a re-exported name reaches the package's __init__.
    return name if (SRC / name).is_dir() or (SRC / f"{name}.py").exists() else "onetomany"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_each_module_imports_only_what_its_layer_allows(path: Path) -> None:
    part = _part(path)
    allowed = ALLOWED[part] | {part}
    tree = ast.parse(path.read_text(), filename=str(path))
    wrong = []
    for module, line, typing_only in _imports(tree):
        if module.split(".")[0] in DISTRIBUTIONS:
            wrong.append(f"line {line}: imports the plugin distribution {module}")
        target = _top_level_target(module)
        if target is not None and target not in allowed and part != "onetomany":
            wrong.append(f"line {line}: {part} may not import {module}")
        relative = str(path.relative_to(SRC))
        if (
            module.split(".")[0] == "sqlalchemy"
            and not typing_only
            and part in ("model", "rules", "templating", "errors")
            and relative not in SQL_OUTSIDE_STORE
        ):
            wrong.append(f"line {line}: {part} may not import SQLAlchemy")
    assert not wrong, f"{path.relative_to(SRC)}:\n" + "\n".join(wrong)


def test_the_rules_cover_every_part_of_the_core() -> None:
    parts = {_part(path) for path in _modules()}
    assert parts <= set(ALLOWED), f"no layer rule for {sorted(parts - set(ALLOWED))}"


def test_a_step_out_of_line_is_caught(tmp_path: Path) -> None:
    # The checker itself must be able to fail: a rule module importing the store.
    tree = ast.parse("from onetomany.store import Store\n")
    found = [_top_level_target(module) for module, _, _ in _imports(tree)]
    assert found == ["store"]
    assert "store" not in ALLOWED["rules"]
