"""Reading template files: UTF-8 only, one newline convention, never outside the folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from onetomany.errors import TemplateError

__all__ = ["read_text", "resolve_inside"]


def read_text(path: Path, *, template: str) -> str:
    """The file's text with newlines normalised to ``\\n`` (so lines count the same everywhere).

    A byte-order mark is tolerated; anything that is not UTF-8 is a TemplateError.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateError(
            f"cannot read {path}: {exc.strerror or exc}", template=template
        ) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TemplateError(
            f"not valid UTF-8 (byte {exc.start}: {exc.reason})", template=template, line=line
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def resolve_inside(root: Path, path: str, *, template: str, line: int | None = None) -> Path:
    """Resolve ``path`` (as written in an ``mj-include``) against ``root``, refusing to leave it.

    ``root`` must already be resolved. Absolute paths, ``..`` and symlinks pointing out of the
    folder all raise a TemplateError naming ``template`` (the includer), its ``line`` when
    known, and ``path``.
    """
    escape = TemplateError(
        f"mj-include path {path!r} points outside the template folder",
        template=template,
        line=line,
    )
    if not path or "\x00" in path:
        raise TemplateError(
            f"mj-include path {path!r} is empty or invalid", template=template, line=line
        )
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute() or path[0] in "/\\":
        raise escape
    if PureWindowsPath(path).drive:
        raise escape
    # resolve() follows symlinks, so a link inside the folder pointing out of it is caught too.
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise escape
    if not resolved.is_file():
        raise TemplateError(
            f"mj-include path {path!r}: no such file in the template folder",
            template=template,
            line=line,
        )
    return resolved
