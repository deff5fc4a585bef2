"""User-facing errors: each becomes one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (a spec, a flag, a file); the message says what and what would be valid."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception type that means 'bad input' rather than 'bug' (the library's are looked up now)."""
    from cyclegan.errors import CheckpointError, ConfigError, DataError

    return (UserError, ConfigError, DataError, CheckpointError)


class StoreFault(UserError):
    """The disk or mount under the store refused a read or write (full, read-only, gone): not bad input and
    not a bug; nothing finished is lost and the same command resumes once the store is fixed."""


# errno -> what the user can do about it (the cause itself is the system's message)
_FAULTS = {
    "ENOSPC": "free some space", "EDQUOT": "free some space", "EFBIG": "free some space",
    "EROFS": "make it writable", "EACCES": "fix its permissions", "EPERM": "fix its permissions",
    "EIO": "check the disk or mount", "ENOTCONN": "check the mount", "ESTALE": "check the mount",
    "EHOSTDOWN": "check the mount", "EHOSTUNREACH": "check the network", "ETIMEDOUT": "check the network",
    "ENODEV": "check the mount", "ENXIO": "check the mount",
}  # fmt: skip


def store_fault(exc: BaseException, where: object = None) -> StoreFault | None:
    """``exc`` as one line naming the path and the cause, if it is an OS error of the store's disk or mount.

    ``where`` names the path when the error carries none (a write into an already open file)."""
    import errno

    if isinstance(exc, StoreFault):  # already one line (an object store's fault: harness.engine.remote)
        return exc
    if not isinstance(exc, OSError) or errno.errorcode.get(exc.errno or 0) not in _FAULTS:
        return None
    path = exc.filename or where or "the run store"
    cause = exc.strerror or str(exc)
    advice = _FAULTS[errno.errorcode[exc.errno]]
    return StoreFault(f"{path}: {cause}; {advice}, then run the same command again (finished runs are kept)")
