"""Run one pipeline step: log to a file and the console, and end a failure with one clear line.

Snakemake adapters and DVC stage scripts call :func:`run_step`. A :class:`~bratseg.errors.BratsegError`
(bad input, bad parameter) is reported as ``error: <message>`` and exit status 1, with no traceback; any other
exception is a bug: its traceback goes to the log file and the console, and the exit status is 1 too.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bratseg.errors import BratsegError

T = TypeVar("T")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _FileOnly(logging.Filter):
    """Keep records marked ``extra={"file_only": True}`` off the console (they are printed otherwise)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


def configure_logging(log_file: Path | str | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to ``log_file`` (created with its folder, overwritten)."""
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(_FileOnly())
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.getLogger("numexpr").setLevel(logging.WARNING)


def run_step(name: str, fn: Callable[[], T], log_file: Path | str | None = None) -> T:
    """Run ``fn`` as the step ``name``; exit with status 1 and a one-line message on a known error."""
    configure_logging(log_file)
    log = logging.getLogger(f"bratseg.{name}")
    start = time.perf_counter()
    try:
        result = fn()
    except BratsegError as exc:
        log.error("%s", exc, extra={"file_only": True})
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except Exception:
        log.exception("step %s failed with an unexpected error", name)
        raise
    log.info("step %s done in %.1f s", name, time.perf_counter() - start)
    return result
