"""Who a name means: identities compared the same way everywhere (approvers, trainers, validators).

An identity is written as a name, an e-mail address, or both as git writes them
(``Alice Martin <alice@example.com>``). Two identities are the same person when they share the
e-mail address or the name, compared case-insensitively with spaces folded: ``DEMO-CI`` is
``demo-ci``, and ``Alice Martin`` is ``Alice Martin <alice@example.com>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_GIT_FORM = re.compile(r"^(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+)>$")


@dataclass(frozen=True)
class Identity:
    name: str | None
    email: str | None

    @classmethod
    def parse(cls, text: str | None) -> Identity:
        text = " ".join((text or "").split())
        found = _GIT_FORM.match(text)
        if found:
            name, email = found["name"], found["email"]
        elif "@" in text and " " not in text:
            name, email = "", text
        else:
            name, email = text, ""
        return cls(name.casefold() or None, email.casefold() or None)

    @property
    def empty(self) -> bool:
        return self.name is None and self.email is None

    def same_person(self, other: Identity) -> bool:
        if self.empty or other.empty:
            return False
        return bool(
            (self.email and self.email == other.email) or (self.name and self.name == other.name)
        )


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two written identities name the same person (never for an empty one)."""
    return Identity.parse(a).same_person(Identity.parse(b))


def listed(who: str | None, allowed: Iterable[str]) -> bool:
    """Whether ``who`` is one of ``allowed``, by :func:`same_person`."""
    return any(same_person(who, entry) for entry in allowed)
