"""Command modules of the ``harness`` CLI; each attaches its commands to ``harness.cli.app``."""
