"""`python -m cli` runs the `pbx` command (handy where the console script is not on PATH)."""

from cli.app import main

main()
