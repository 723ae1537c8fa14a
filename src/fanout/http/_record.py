"""The output record of one request: one JSON line, secrets scrubbed.

``{"id", "index", "ok", "status", "json" | "text", "error", "attempts",
"elapsed_ms"}`` (+ ``"truncated": true`` when ``--max-body`` cut the body,
+ ``"headers"`` with ``--include-headers``). ``json`` holds the body when it is
JSON, else ``text``; neither when no response arrived (``status`` is null).
"""

from __future__ import annotations

import json
from typing import Any

from fanout._result import Result
from fanout.http._client import Response
from fanout.http._redact import Scrubber, redact_headers
from fanout.http._spec import InvalidLine, RequestSpec


def error_message(exc: BaseException) -> str:
    """``str(exc)`` plus its notes (e.g. why a Retry-After was not honoured)."""
    message = str(exc) or type(exc).__name__
    notes = getattr(exc, "__notes__", None)
    if notes:
        message = "; ".join([message, *map(str, notes)])
    return message


def _body(rec: dict[str, Any], response: Response) -> None:
    body = response.body
    if not body:
        rec["text"] = ""
        return
    if not response.truncated:
        try:
            rec["json"] = json.loads(body)
            return
        except ValueError:
            pass
    rec["text"] = body.decode("utf-8", errors="replace")


class RecordMaker:
    """Turns a finished ``Result`` into its output line (bytes, newline included)."""

    def __init__(self, *, include_headers: bool) -> None:
        self.include_headers = include_headers
        self._scrubbers: dict[tuple[str, ...], Scrubber] = {(): Scrubber()}

    def _scrubber(self, secrets: tuple[str, ...]) -> Scrubber:
        scrubber = self._scrubbers.get(secrets)
        if scrubber is None:
            scrubber = self._scrubbers[secrets] = Scrubber(secrets)
        return scrubber

    def record(self, result: Result[Any]) -> dict[str, Any]:
        """The record as a dict (not yet scrubbed)."""
        spec: RequestSpec | InvalidLine = result.item
        error = result.error
        response: Response | None = result.value if error is None else getattr(
            error, "response", None)
        rec: dict[str, Any] = {"id": spec.id, "index": spec.index, "ok": error is None,
                               "status": None}
        if response is not None:
            rec["status"] = response.status
            _body(rec, response)
            if response.truncated:
                rec["truncated"] = True
        rec["error"] = None if error is None else {
            "type": type(error).__name__, "message": error_message(error)}
        invalid = isinstance(spec, InvalidLine)
        rec["attempts"] = 0 if invalid else result.attempts
        rec["elapsed_ms"] = 0.0 if invalid else round(result.elapsed * 1000.0, 3)
        if self.include_headers and response is not None and response.headers is not None:
            rec["headers"] = redact_headers(response.headers, Scrubber())
        return rec

    def line(self, result: Result[Any]) -> tuple[bytes, dict[str, Any]]:
        """The JSON line to write, and the record it came from."""
        rec = self.record(result)
        text = _dumps(rec)
        secrets: tuple[str, ...] = getattr(result.item, "secrets", ())
        if secrets:
            scrubber = self._scrubber(secrets)
            if scrubber.found_in_json(text):
                rec = scrubber.data(rec)
                text = _dumps(rec)
        try:
            return (text + "\n").encode("utf-8"), rec
        except UnicodeEncodeError:  # lone surrogates from a JSON body: keep them escaped
            return (json.dumps(rec, default=str) + "\n").encode("ascii"), rec


def _dumps(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False, separators=(", ", ": "), default=str)
