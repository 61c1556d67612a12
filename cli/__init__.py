"""The `pbx` command line (typer)."""
