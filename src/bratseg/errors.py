"""Errors that end a step with one clear line, and the check of a choice argument that names it."""

from __future__ import annotations

from pathlib import Path


class BratsegError(Exception):
    """Base class: an error the user can act on; printed as one line, never as a traceback."""


class CaseError(BratsegError):
    """Bad input in one case. The message names the case and the file."""

    def __init__(self, case_id: str, path: Path | str | None, reason: str) -> None:
        self.case_id = case_id
        self.path = None if path is None else Path(path)
        self.reason = reason
        where = f"{case_id}: {self.path}" if self.path is not None else case_id
        super().__init__(f"{where}: {reason}")


class ConfigError(BratsegError):
    """A bad parameter. The message names the key."""


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the argument ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
