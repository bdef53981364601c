"""What the JSON log handler keeps: everything but the instrumentation's harmless detach error."""

import logging
import sys

from chassis.logs import _StreamContextDetachFilter


def record(name: str, error: Exception | None) -> logging.LogRecord:
    exc_info = None
    if error is not None:
        try:
            raise error
        except type(error):
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "Failed to detach context", None, exc_info)


def test_the_detach_error_of_an_ended_stream_is_dropped():
    error = ValueError("<Token var=<ContextVar name='current_context'>> was created in a different Context")
    assert not _StreamContextDetachFilter().filter(record("opentelemetry.context", error))


def test_other_errors_of_that_logger_and_of_other_loggers_are_kept():
    keep = _StreamContextDetachFilter()
    assert keep.filter(record("opentelemetry.context", RuntimeError("exporter down")))
    assert keep.filter(record("crm.events", ValueError("was created in a different Context")))
    assert keep.filter(record("opentelemetry.context", None))
