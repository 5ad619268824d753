"""`python -m gemner ...` is the `gemner` command."""

from gemner.cli.main import app

app()
