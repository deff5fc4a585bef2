"""The library's error types, in a leaf module every other module may import.

Each message says what is wrong and what would be valid; the command line turns them into one line on stderr
and exit code 2.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad key or value; the message names the key and what would be valid."""


class DataError(ValueError):
    """A dataset that cannot be used; the message names the folder and what is wrong."""


class NotDownloaded(DataError):
    """An official data set named by the config that is not in the data home yet."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class NoImages(DataError):
    """A training domain without images; ``root`` is the data set's folder (None for data.dir_A/dir_B)."""

    def __init__(self, message: str, root: object) -> None:
        super().__init__(message)
        self.root = root


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the file named."""
