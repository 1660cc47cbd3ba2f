"""Secrets never reach a message: credentials in URIs, secret-looking values and every secret
the settings hold are masked, in one-line errors, logs and tracebacks alike.

Three layers, each catching what the one before cannot:

- the password of every ``scheme://user:password@host`` URI, up to the *last* ``@`` of the URI,
  so a raw ``@``, ``:``, ``/`` or ``%`` in a password does not end the match early;
- the value of every ``password=...``-like pair;
- every value registered with :func:`register_secret` (the settings register the passwords of
  their URIs and the ledger key when they load), wherever it appears, also URL-encoded or
  decoded: a password that a library prints on its own is still masked.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from urllib.parse import quote, unquote

_URI_CREDENTIALS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>\S*)@"
)
_KEY_VALUE = re.compile(
    r"(?P<key>\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|ledger[_-]?key)[\w.-]*"
    r"\s*(?:=|:\s)\s*)(?P<quote>['\"]?)[^\s'\",;)]+",
    re.IGNORECASE,
)
MASK = "***"
_MIN_SECRET = 4
"""Shorter values are not registered: masking every ``abc`` would garble messages."""

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its URL-encoded and decoded forms) in everything redacted from now on."""
    if not value or len(value) < _MIN_SECRET:
        return
    with _lock:
        _secrets.update(v for v in {value, quote(value, safe=""), unquote(value)} if v)


def uri_password(uri: str | None) -> str | None:
    """The password of ``scheme://user:password@host...`` (up to the last ``@``), if any."""
    if not uri:
        return None
    found = _URI_CREDENTIALS.search(uri)
    return found["password"] if found and found["password"] else None


def redact(text: str) -> str:
    """``text`` with every credential it carries replaced by ``***`` (see the module doc)."""
    text = _URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['quote']}{MASK}", text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redacted_traceback(error: BaseException) -> str:
    """The traceback ``--verbose`` shows, redacted like every other line."""
    return redact("".join(traceback.format_exception(error)))


class RedactingFilter(logging.Filter):
    """Redacts a record's message and its traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            error = record.exc_info[1]
            if error is not None:
                record.exc_text = redacted_traceback(error).rstrip("\n")
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
