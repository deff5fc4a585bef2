"""User-facing errors: each becomes one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (a spec, a flag, a file); the message says what and what would be valid."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception type that means 'bad input' rather than 'bug' (the library's are looked up now)."""
    from cyclegan.errors import CheckpointError, ConfigError, DataError

    return (UserError, ConfigError, DataError, CheckpointError)
