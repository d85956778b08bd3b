"""The ``onetomany`` command and its views: explain, simulate, preview and validate.

Every command is a few lines over the public Python API (:mod:`onetomany.cli.commands`).
"""

from onetomany.cli.commands import app, main

__all__ = ["app", "main"]
