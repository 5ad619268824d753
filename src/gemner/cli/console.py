"""The two consoles every command prints through.

Both never wrap (`soft_wrap=True`): an error or a note is one line whatever the terminal width, so logs,
scripts and tests can read it. Results go to `out` (stdout); notes, warnings and errors go to `err`.
"""

from __future__ import annotations

from rich.console import Console

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
