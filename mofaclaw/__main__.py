"""Lets `python -m mofaclaw` run the CLI."""

from mofaclaw.cli.app import main

main()
