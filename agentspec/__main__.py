"""`python -m agentspec` runs the CLI."""

from agentspec.cli import run

run()
