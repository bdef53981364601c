"""Readable log lines for a person at a terminal: time, service, level, message and the extra fields."""

import logging

from chassis.logs import ConsoleFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("crm.server", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(entry, key, value)
    return entry


def test_a_console_line_shows_the_service_level_message_and_extra_fields() -> None:
    line = ConsoleFormatter("loyalty-service").format(record("listening", port=50052))
    assert line.split(" ", 1)[1] == "loyalty-service INFO    listening  port=50052"


def test_a_console_line_leaves_out_empty_trace_fields() -> None:
    line = ConsoleFormatter("gateway").format(record("stopped", trace_id="", span_id=""))
    assert line.endswith("gateway INFO    stopped")
