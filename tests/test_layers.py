"""The layers of docs/architecture.md, enforced: each package imports only what its row allows.

Reads every module of the core with :mod:`ast` (imports under ``if TYPE_CHECKING:`` count too:
a type-only import still ties one layer to another), so a step out of line fails here with the
module and the import, rather than showing up later as an import cycle.

And the store owns the SQL (STYLE.md rule 6): outside ``store/`` no module imports SQLAlchemy
except under ``if TYPE_CHECKING:`` to annotate, and none reaches into a store for its engine, a
connection (``store.read()``, ``store.write()``) or a private method (``store._insert``): it
calls a public function of the store or of ``store/queries/``.
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
    | {"delivery", "tracking", "triggers", "metrics", "ops"},
    # Operating a program (status, Prometheus, retention): below the engine, which calls it.
    "ops": {"errors", "model", "rules", "store", "templating", "plugins", "program"}
    | {"delivery", "tracking", "triggers"},
    # The Celery tasks drive an engine, as a host's code would.
    "celery": {"errors", "model", "rules", "store", "templating", "plugins", "program"}
    | {"delivery", "tracking", "triggers", "engine", "ops"},
    "web": {"errors", "model", "rules", "store", "templating", "plugins", "program"}
    | {"delivery", "tracking", "triggers", "engine"},
    # Measuring reads what everything else recorded; it may import all but the CLI (and the
    # engine only to annotate: the engine calls it).
    "metrics": {"errors", "model", "rules", "store", "templating", "plugins", "program"}
    | {"delivery", "tracking", "triggers", "engine"},
    "testing": {"errors", "model", "rules", "store", "plugins", "delivery", "program"},
    # The local provider fakes' shared server: the standard library only, no pytest.
    "testing_http": set(),
    "cli": {"errors", "model", "rules", "store", "templating", "plugins", "program"}
    | {"delivery", "tracking", "triggers", "engine", "metrics", "ops", "onetomany"},
    "onetomany": set(),  # the package's __init__ re-exports the public API from every layer
}
# The bundled plugin distributions: the core never imports one.
DISTRIBUTIONS = (
    "onetomany_smtp",
    "onetomany_postmark",
    "onetomany_twilio",
    "onetomany_slack",
    "onetomany_webhook",
    "onetomany_whatsapp_cloud",
    "onetomany_sendgrid",
    "onetomany_mailgun",
    "onetomany_ses",
    "onetomany_csv",
    "onetomany_sql",
    "onetomany_stripe",
    "onetomany_hubspot",
    "onetomany_example_webhook",
)
# The one part of the core that builds SQL.
SQL_PART = "store"
# What a store hands out only to its own package: its engine, and a connection to run SQL on.
STORE_ONLY = {"engine", "read", "write"}


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
    for module, line, _ in _imports(tree):
        if module.split(".")[0] in DISTRIBUTIONS:
            wrong.append(f"line {line}: imports the plugin distribution {module}")
        target = _top_level_target(module)
        if target is not None and target not in allowed and part != "onetomany":
            wrong.append(f"line {line}: {part} may not import {module}")
    assert not wrong, f"{path.relative_to(SRC)}:\n" + "\n".join(wrong)


def _is_a_store(node: ast.expr) -> bool:
    """``store``, ``self.store``, ``engine._store``, ...: a name that says it holds a store."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name.lower().endswith("store")


def sql_outside_the_store(tree: ast.Module) -> list[str]:
    """What a module outside ``store/`` does that only the store may: import SQLAlchemy other
    than to annotate, or use a store's engine, connections or private methods."""
    wrong = [
        f"line {line}: imports {module} (only the store builds SQL; annotate under TYPE_CHECKING)"
        for module, line, typing_only in _imports(tree)
        if module.split(".")[0] == "sqlalchemy" and not typing_only
    ]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _is_a_store(node.value):
            continue
        private = node.attr.startswith("_") and not node.attr.startswith("__")
        if private or node.attr in STORE_ONLY:
            wrong.append(
                f"line {node.lineno}: {ast.unparse(node)} (call a public function of the store "
                "or store/queries/ instead)"
            )
    return wrong


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if _part(p) != SQL_PART],
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_only_the_store_speaks_sql(path: Path) -> None:
    wrong = sql_outside_the_store(ast.parse(path.read_text(), filename=str(path)))
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


@pytest.mark.parametrize(
    "source",
    [
        "import sqlalchemy as sa\n",
        "from sqlalchemy.engine import Connection\n",
        "with store._write() as conn:\n    pass\n",
        "stmt = self.store._insert(table)\n",
        "store._upsert(conn, table, rows)\n",
        "with engine.store.engine.connect() as conn:\n    pass\n",
        "conn = self._store.engine.begin()\n",
        "with store.read() as conn:\n    conn.exec_driver_sql('SELECT 1')\n",
        "with self.store.write() as conn:\n    pass\n",
    ],
)
def test_sql_outside_the_store_is_caught(source: str) -> None:
    # The checker itself must be able to fail: each planted line is one violation.
    assert len(sql_outside_the_store(ast.parse(source))) == 1, source


@pytest.mark.parametrize(
    "source",
    [
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sqlalchemy as sa\n",
        "store.write_many(rows)\nstore.dialect\nself.engine = engine\n",
        "segment_members(self.store, name)\nstore.__class__\n",
    ],
)
def test_what_the_store_rule_allows(source: str) -> None:
    assert sql_outside_the_store(ast.parse(source)) == [], source
