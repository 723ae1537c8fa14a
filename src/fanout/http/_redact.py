"""Keeping secrets out of everything ``fanout http`` writes.

A header is *sensitive* when its name looks like a credential (``Authorization``,
``Cookie``, ``X-API-Key``, ``X-Auth-Token``, ...) or when its value was filled
from an environment variable (``${API_KEY}``). Sensitive values are never
written: not in records, headers, error messages nor the summary; and they are
not sent on a redirect to another origin (see ``_client``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"

# A name containing one of these is a credential header.
_SENSITIVE_WORDS = ("auth", "key", "token", "secret", "password", "passwd", "session",
                    "cookie", "credential", "signature")

# Shorter "secrets" would match all over ordinary text (and are not real secrets).
_MIN_SECRET_LEN = 4


def is_sensitive(name: str) -> bool:
    """Whether a header name looks like it carries a credential."""
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE_WORDS)


def secret_parts(value: str) -> list[str]:
    """The strings to scrub for one secret header value: the value, and its
    credential after a scheme word (``Bearer sk-1`` -> ``sk-1``)."""
    parts = [value]
    scheme, sep, credential = value.strip().partition(" ")
    if sep and scheme.isalpha() and credential.strip():
        parts.append(credential.strip())
    return [p for p in parts if len(p) >= _MIN_SECRET_LEN]


class Scrubber:
    """Replaces known secret values in text and JSON-like data with ``[redacted]``."""

    __slots__ = ("_encoded", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if len(s) >= _MIN_SECRET_LEN}
        # longest first, so a secret containing another is replaced whole
        self._secrets: tuple[str, ...] = tuple(sorted(unique, key=len, reverse=True))
        # the form each secret takes inside a JSON string (quotes, unicode escaped)
        forms = set(unique)
        for s in unique:
            forms.add(json.dumps(s)[1:-1])
            forms.add(json.dumps(s, ensure_ascii=False)[1:-1])
        self._encoded: tuple[str, ...] = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def plus(self, extra: Iterable[str]) -> Scrubber:
        """A scrubber that also knows ``extra``."""
        more = [s for s in extra if len(s) >= _MIN_SECRET_LEN]
        if not more:
            return self
        return Scrubber((*self._secrets, *more))

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def found_in_json(self, encoded: str) -> bool:
        """Whether a JSON document (as text) contains a secret anywhere."""
        return any(s in encoded for s in self._encoded)

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` with secrets replaced in every string and key."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


def redact_headers(headers: Iterable[tuple[str, str]], scrubber: Scrubber) -> dict[str, str]:
    """Response or request headers as a dict safe to write: sensitive names get
    ``[redacted]``, known secrets are scrubbed from the others; repeated names are
    joined with ``", "``."""
    out: dict[str, str] = {}
    for name, value in headers:
        safe = REDACTED if is_sensitive(name) else scrubber.text(value)
        out[name] = f"{out[name]}, {safe}" if name in out else safe
    return out
