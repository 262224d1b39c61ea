"""uvicorn's own text formatters, with API keys and labelled secrets masked.

uvicorn's access line holds the request's path *with its query string*: a client that puts
a key in the URL (refused with 401) would otherwise leave it in the log. Imported only by
``eventml serve`` (it needs uvicorn).
"""

from __future__ import annotations

import logging

from uvicorn.logging import AccessFormatter, DefaultFormatter

from eventml.observe.logging import redact


class RedactingDefaultFormatter(DefaultFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingAccessFormatter(AccessFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
