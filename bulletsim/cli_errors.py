"""How the command line reports a user's mistake: one line, exit code 2, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer

# User input errors: bad names and numbers (ValueError), files that are missing, folders
# given for files, unreadable paths (OSError). Each prints one line and exits with code 2.
USER_ERRORS = (ValueError, OSError)


def fail(msg: str) -> NoReturn:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)
