"""The two consoles every command prints through.

Both never wrap (`soft_wrap=True`): an error or a note is one line whatever the terminal width, so logs,
scripts and tests can read it. Results go to `out` (stdout); notes, warnings and errors go to `err`, through
`error`, `warning`, `note` and `warnings`, which print the message as text (never as rich markup).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

STDIO = "-"  # as --input: read standard input; as --output: write standard output


def result_format(choice: str) -> str:
    """`json` or `table` (`choice` is one of those or `auto`): `auto` is a table for a person at a terminal,
    JSON for a pipe or a file (`| jq`)."""
    choice = getattr(choice, "value", choice)
    if choice == "auto":
        return "table" if out.is_terminal else "json"
    return choice


def print_json_line(record: object) -> None:
    """One JSON record on stdout, byte for byte (no markup, wrapping or emoji codes: `:x:` stays `:x:`)."""
    import json

    out.file.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.file.flush()


def _say(label: str, message: object) -> None:
    # The message is text, not markup: a path or a reason with "[...]" must print as it is.
    err.print(f"{label} {escape(str(message))}", highlight=False)


def error(message: object) -> None:
    _say("[bold red]error:[/]", message)


def warning(message: object) -> None:
    _say("[yellow]warning:[/]", message)


def progress_line(message: object) -> None:
    """A line of a long run's log on stderr, as text (a module function: spawned training processes get it
    by name)."""
    err.print(escape(str(message)), highlight=False)


def note(message: object) -> None:
    _say("[yellow]note:[/]", message)


def warnings(issues: Sequence[object], shown: int = 20) -> None:
    """Each issue on its own line, the first `shown` of them, then how many more there are."""
    for issue in issues[:shown]:
        warning(issue)
    if len(issues) > shown:
        warning(f"... {len(issues) - shown} more")
