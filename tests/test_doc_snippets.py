"""Every snippet of README.md and the docs runs, or names what exists.

- Python blocks run, in order, in one fresh interpreter per page, with the working directory
  in a temporary folder that holds a copy of the examples (so ``load_program("examples/...")``
  reads the copy and writes its store and outbox there, never into the checkout). Sockets may
  reach loopback only: a snippet that would talk to the internet fails.
- Shell blocks, inline ``code`` and the CLI table are checked by what each command is: a
  ``make TARGET`` must be a target of the Makefile; an ``onetomany COMMAND`` must be a real
  command whose ``--help`` lists every ``--option`` the page names for it; a ``pip install -e
  PATH`` must name a folder of the checkout. Any other shell command fails until this harness
  is taught how to check it. Every docs page's ``make`` and ``onetomany`` commands (its shell
  blocks, inline code and tables) are checked the same way.
- A TOML block that docs/concepts.md presents as an excerpt of the example program matches the
  example's program.toml, table by table.

The harness reads whatever snippets the pages hold; it keeps no copy of their text.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onetomany.cli.commands import app

ROOT = Path(__file__).resolve().parents[1]
# The pages a newcomer copies from: their Python runs, and each of their shell lines is checked.
PAGES = [ROOT / "README.md", ROOT / "docs" / "index.md"]
# Every page whose make and onetomany commands are checked.
COMMAND_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLE = ROOT / "examples" / "onboarding" / "program.toml"
SHELL_LANGUAGES = {"sh", "shell", "bash", "console"}
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")

# Runs before the snippets: any connection or name lookup beyond this machine is an error.
LOCAL_ONLY = """\
import socket

_LOCAL = ("127.", "::1", "localhost")
_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
)


def _check(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host is not None and not str(host).startswith(_LOCAL):
        raise OSError(f"a README snippet tried to reach {host!r}; snippets stay on this machine")


def _guarded_connect(self, address):
    if isinstance(address, tuple):
        _check(address[0])
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if isinstance(address, tuple):
        _check(address[0])
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    _check(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
"""


def blocks(page: Path) -> list[tuple[str, int, str]]:
    """Every fenced block of ``page``: (language, line of its first code line, code)."""
    text = page.read_text(encoding="utf-8")
    return [
        (found[1], text.count("\n", 0, found.start(2)) + 1, found[2])
        for found in FENCE.finditer(text)
    ]


def prose(page: Path) -> str:
    """``page`` without its fenced blocks: paragraphs, lists and tables."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def shell_commands(page: Path) -> list[str]:
    """Each command line of the page's shell blocks, its comment and prompt taken off."""
    commands = []
    for language, _, code in blocks(page):
        if language not in SHELL_LANGUAGES:
            continue
        for line in code.splitlines():
            line = line.removeprefix("$ ").split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def inline_commands(page: Path, program: str) -> list[str]:
    """Every inline code span of the page's prose that runs ``program`` (``make``, ...); a
    span of the bare name (the entry point group `onetomany`) is a name, not a command."""
    spans = (span.replace("\\|", "|") for span in INLINE.findall(prose(page)))
    return [span for span in spans if span.startswith(f"{program} ")]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.MULTILINE))


def command_words(command: str) -> list[str]:
    """The command path of ``onetomany db upgrade TARGET``: ``["db", "upgrade"]``; the words
    before the first argument, placeholder or option."""
    words = []
    for word in shlex.split(command)[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    return words


def all_commands(program: str) -> list[tuple[str, str]]:
    """(page name, command) for every use of ``program`` in the pages' blocks and prose."""
    found = []
    for page in COMMAND_PAGES:
        uses = [c for c in shell_commands(page) if c.startswith(f"{program} ")]
        name = str(page.relative_to(ROOT))
        found += [(name, command) for command in uses + inline_commands(page, program)]
    return found


def test_the_pages_have_snippets() -> None:
    # The harness would pass vacuously on pages it cannot parse.
    assert any(language == "python" for language, _, _ in blocks(ROOT / "README.md"))
    assert all_commands("make") and all_commands("onetomany")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_python_snippets_run(page: Path, tmp_path: Path) -> None:
    python = [(line, code) for language, line, code in blocks(page) if language == "python"]
    if not python:
        pytest.skip(f"{page.name} has no Python snippet")
    # The snippets run against a copy of the examples, whose channels write to local folders.
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("var"))
    for program in (tmp_path / "examples").glob("*/program.toml"):
        channels = tomllib.loads(program.read_text(encoding="utf-8")).get("channels", {})
        for name, settings in channels.items():
            assert settings["plugin"] in {"outbox", "inapp"}, (
                f"{program.parent.name}'s channel {name} would send for real"
            )
    # Each block is compiled under its page and line, so a failure points at the snippet.
    runner = LOCAL_ONLY + textwrap.dedent(
        f"""
        namespace = {{"__name__": "__main__"}}
        for line, code in {python!r}:
            exec(compile("\\n" * (line - 1) + code, {page.name!r}, "exec"), namespace)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", runner],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{page.name}'s Python snippets failed:\n{result.stderr}"


@pytest.mark.parametrize(
    ("page", "command"), all_commands("make"), ids=lambda value: str(value).replace(" ", "_")
)
def test_make_targets_exist(page: str, command: str) -> None:
    targets = make_targets()
    for target in shlex.split(command)[1:]:
        if not target.startswith("-") and "=" not in target:
            assert target in targets, f"{page} runs `{command}`; the Makefile has no {target!r}"


@pytest.mark.parametrize(
    ("page", "command"), all_commands("onetomany"), ids=lambda value: str(value).replace(" ", "_")
)
def test_cli_commands_exist(page: str, command: str) -> None:
    words = command_words(command)
    options = OPTION.findall(command)
    if not words:  # `onetomany --version`: run it
        result = CliRunner().invoke(app, options)
        assert result.exit_code == 0, f"{page}: `{command}` failed:\n{result.output}"
        return
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, f"{page}: `{command}`: no command {' '.join(words)!r}"
    for option in options:
        assert re.search(rf"(?<![\w-]){option}(?![\w-])", result.output), (
            f"{page}: `{command}` names {option}, which `onetomany {' '.join(words)}` lacks"
        )


def test_other_shell_commands_are_known() -> None:
    """A shell line that is not make or onetomany: pip installs of local folders only."""
    for page in PAGES:
        for command in shell_commands(page):
            program, *args = shlex.split(command)
            if program in {"make", "onetomany"}:
                continue
            assert program == "pip" and args[:1] == ["install"], (
                f"{page.name}: teach tests/test_readme_snippets.py to check `{command}`"
            )
            for path in (arg for arg in args[1:] if not arg.startswith("-")):
                assert (ROOT / path.split("[", 1)[0]).is_dir(), f"{page.name}: `{command}`"


def test_the_concepts_example_is_the_example_program() -> None:
    page = ROOT / "docs" / "concepts.md"
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    excerpts = [
        code
        for language, _, code in blocks(page)
        if language == "toml" and '[program]\nname = "acme-onboarding"' in code
    ]
    assert excerpts, "docs/concepts.md no longer shows the example program"
    for code in excerpts:
        shown = tomllib.loads(code)

        def check(shown: dict[str, object], real: dict[str, object], path: str) -> None:
            for key, value in shown.items():
                where = f"{path}.{key}" if path else key
                assert key in real, f"docs/concepts.md shows {where}, which {EXAMPLE.name} lacks"
                if isinstance(value, dict) and isinstance(real[key], dict):
                    check(value, real[key], where)  # type: ignore[arg-type]
                else:
                    assert value == real[key], f"docs/concepts.md: {where} is not as in the file"

        check(shown, example, "")
