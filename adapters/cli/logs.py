"""structlog set-up: readable console lines by default, JSON lines for log shippers."""
from __future__ import annotations

import logging
import sys

import structlog

from adapters.ib.accounts import ACCOUNT_RE, redact_text


class _CurrentStderr:
    """Resolve sys.stderr at each write: test runners and daemons swap it after logging is configured."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _redact_accounts(_logger, _method, event: dict) -> dict:
    """Last line of defence: an account id inside any logged string (ours or a library's repr of an
    order) is masked before the line is written."""
    for k, v in event.items():
        if isinstance(v, str) and ACCOUNT_RE.search(v):
            event[k] = redact_text(v)
    return event


def configure_logging(json: bool = False, level: str = "INFO") -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_accounts,
    ]
    if json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer(sort_keys=True)]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )
