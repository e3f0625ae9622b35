"""Secrets out of the access log: `api_key=` (Open311 clients send their key in the query string) and any
other credential-like query parameter are replaced by *** before a log line is formatted."""

from __future__ import annotations

import logging
import re

_SECRET_PARAM = re.compile(r"(?i)([?&](?:api_key|apikey|access_token|token|password|key)=)[^&#\s\"]*")
_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+|basic\s+)?[^\s\"',}]+")


def redact(text: str) -> str:
    """`text` with credential values masked: ?api_key=abc -> ?api_key=***, Authorization: Bearer x -> ***."""
    return _AUTH_HEADER.sub(r"\1***", _SECRET_PARAM.sub(r"\1***", text))


class RedactSecrets(logging.Filter):
    """Masks credentials in a record's message and string arguments (uvicorn's access log passes the
    request path with its query string as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log(names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error")) -> None:
    """Install the filter once on the server's loggers (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
