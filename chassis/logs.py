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


def configure_logging(service_name: str) -> None:
    """Routes all logging to one JSON handler; the level comes from `LOG_LEVEL` (default INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceContextFilter())
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
