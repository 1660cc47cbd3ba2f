"""Secrets never reach a message: credentials in URIs and secret-looking values are masked."""

from __future__ import annotations

import re

_URI_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s]*@")
_KEY_VALUE = re.compile(
    r"(?P<key>\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|ledger[_-]?key)[\w.-]*"
    r"\s*(?:=|:\s)\s*)(?P<quote>['\"]?)[^\s'\",;)]+",
    re.IGNORECASE,
)
MASK = "***"


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URI and the value of
    every ``password=...``-like pair replaced by ``***``."""
    text = _URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['key']}{m['quote']}{MASK}", text)
