"""Structured JSON logs on stderr, each line carrying the current trace and span id."""

import logging
import os
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter


class _TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` of the active span (empty outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else ""
        record.span_id = format(context.span_id, "016x") if context.is_valid else ""
        return True


class _StreamContextDetachFilter(logging.Filter):
    """Drops the gRPC instrumentation's "Failed to detach context" error, logged when a client ends
    a server stream early (a follower cancelling its event feed): the span is still ended and
    nothing fails; the message is an upstream defect (opentelemetry-python-contrib issue 2357)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            record.name == "opentelemetry.context"
            and isinstance(error, ValueError)
            and "was created in a different Context" in str(error)
        )


# Attributes every LogRecord has; anything else on a record came from `extra=` and is shown.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class ConsoleFormatter(logging.Formatter):
    """One readable line per record for a person at a terminal (`make run`): time, service, level,
    message and the record's extra fields as key=value."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self._service = service_name

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and key not in ("trace_id", "span_id") and value not in ("", None)
        )
        clock = self.formatTime(record, "%H:%M:%S")
        line = f"{clock} {self._service} {record.levelname:<7} {record.getMessage()}" + (
            f"  {extras}" if extras else ""
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(service_name: str) -> None:
    """Routes all logging to one handler on stderr: JSON lines by default, or readable lines with
    `LOG_FORMAT=console`; the level comes from `LOG_LEVEL` (default INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceContextFilter())
    handler.addFilter(_StreamContextDetachFilter())
    if os.environ.get("LOG_FORMAT", "json").strip().lower() == "console":
        handler.setFormatter(ConsoleFormatter(service_name))
    else:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{trace_id}{span_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service_name},
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    # Start and stop lines stay whatever the level: supervisors and tests read the bound port there.
    logging.getLogger("crm.server").setLevel(min(root.level, logging.INFO))
    # The audit trail's lines are a record, not diagnostics: no log level silences them.
    logging.getLogger("crm.audit").setLevel(min(root.level, logging.INFO))
