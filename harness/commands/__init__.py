"""Command modules of the ``harness`` CLI: each defines a Typer ``app``; ``harness.cli`` joins them."""
