"""The `gemner` command line (typer). Heavy libraries are imported inside commands, not at start-up."""
