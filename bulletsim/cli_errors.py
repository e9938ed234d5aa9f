"""How the command line reports a user's mistake: one line, exit code 2, no traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # typer loads when first used: `python -m` scripts start without it
    import typer

# User input errors: bad names and numbers (ValueError), files that are missing, folders
# given for files, unreadable paths (OSError). Each prints one line and exits with code 2.
USER_ERRORS = (ValueError, OSError)


def fail(msg: str) -> NoReturn:
    import typer

    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def interrupted(what: str = "nothing was written") -> NoReturn:
    """Ctrl-C in a command: one line saying what was left (`interrupted: <what>`) and exit
    code 130, no traceback."""
    import typer

    typer.echo(f"interrupted: {what}", err=True)
    raise typer.Exit(130)


def doc_summary(doc: str | None) -> str:
    """The first paragraph of a module docstring as one line: a script's `--help` description
    (its first line alone can stop mid-sentence)."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


class OneLineParser(argparse.ArgumentParser):
    """argparse for `python -m` scripts: a bad flag is one line (`error: <prog>: <message>`)
    and exit code 2, like the typer commands."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def run_script(main: Callable[[], object]) -> None:
    """Run a `python -m` script's `main`; a user error (`USER_ERRORS`) is one line on stderr
    and exit code 2, Ctrl-C exit code 130, never a traceback."""
    try:
        main()
    except USER_ERRORS as e:
        print(f"error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def given_options(ctx: typer.Context, names: tuple[str, ...]) -> list[str]:
    """The options among `names` (parameter names) the user typed on the command line, as
    their first --flag, in order (not defaults or environment variables): for refusing an
    option that the chosen mode would silently ignore."""
    flags = {p.name: p.opts[0] for p in ctx.command.params}
    # by name: typer may bring its own copy of click's ParameterSource
    typed = [n for n in names if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"]
    return [flags[n] for n in typed]
