"""`python -m edgefleet` runs the CLI."""

from edgefleet.cli.app import main

main()
