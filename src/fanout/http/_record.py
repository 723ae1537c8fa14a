"""The output record of one request: one JSON line, secrets scrubbed.

``{"id", "index", "ok", "status", "json" | "text", "error", "attempts",
"elapsed_ms"}`` (+ ``"truncated": true`` when ``--max-body`` cut the body,
+ ``"headers"`` with ``--include-headers``). ``json`` holds the body when it is
JSON, else ``text``; neither when no response arrived (``status`` is null).

For an OpenAI Batch input, the Batch API's output line instead
(``BatchRecordMaker``): ``{"id": "batch_req_...", "custom_id", "response":
{"status_code", "request_id", "body"}, "error": null}`` when an answer arrived
(whatever its status), ``{..., "response": null, "error": {"code",
"message"}}`` when none did.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from fanout._journal import CorruptJournal, JournalError
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


class Scrubbers:
    """One ``Scrubber`` per distinct tuple of secrets (most requests share one), and
    the JSON line of a record with those secrets scrubbed."""

    def __init__(self) -> None:
        self._scrubbers: dict[tuple[str, ...], Scrubber] = {}

    def _scrubber(self, secrets: tuple[str, ...]) -> Scrubber:
        scrubber = self._scrubbers.get(secrets)
        if scrubber is None:
            scrubber = self._scrubbers[secrets] = Scrubber(secrets)
        return scrubber

    def encode(self, rec: dict[str, Any], secrets: tuple[str, ...]) -> bytes:
        """``rec`` as one JSON line (newline included), every secret replaced."""
        text = _dumps(rec)
        if secrets:
            scrubber = self._scrubber(secrets)
            if scrubber.found_in_json(text):
                rec = scrubber.data(rec)
                text = _dumps(rec)
        try:
            return (text + "\n").encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from a JSON body: keep them escaped
            return (json.dumps(rec, default=str) + "\n").encode("ascii")


class RecordMaker(Scrubbers):
    """Turns a finished ``Result`` into its output line (bytes, newline included)."""

    def __init__(self, *, include_headers: bool) -> None:
        super().__init__()
        self.include_headers = include_headers

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

    def line(self, result: Result[Any]) -> bytes:
        """The JSON line to write for ``result`` (newline included)."""
        if result.error is None and not self.include_headers:
            fast = self._spliced(result)
            if fast is not None:
                return fast
        return self.encode(self.record(result), getattr(result.item, "secrets", ()))

    def _spliced(self, result: Result[Any]) -> bytes | None:
        """A success with a JSON body: the body is checked, then written as it came
        instead of being decoded and encoded again. None when that does not apply."""
        response: Response | None = result.value
        if response is None:
            return None
        text = _json_text(response)
        if text is None:
            return None
        spec: RequestSpec = result.item
        key = spec.id
        line = (
            f'{{"id": {key if isinstance(key, int) else _json_string(key)}, '
            f'"index": {spec.index}, "ok": true, '
            f'"status": {response.status}, "json": {text}, "error": null, '
            f'"attempts": {result.attempts}, '
            f'"elapsed_ms": {round(result.elapsed * 1000.0, 3)!r}}}\n'
        )
        if "\u2028" in line or "\u2029" in line:  # line breaks to some readers
            line = line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        if spec.secrets and self._scrubber(spec.secrets).found_in_json(line):
            return None
        try:
            return line.encode("utf-8")
        except UnicodeEncodeError:
            return None


class BatchRecordMaker(Scrubbers):
    """Turns a finished ``Result`` into a line of the OpenAI Batch output format."""

    def __init__(self) -> None:
        super().__init__()
        self._random = random.Random(os.urandom(16))

    def _id(self) -> str:
        return f"batch_req_{self._random.getrandbits(128):032x}"

    def record(self, result: Result[Any]) -> dict[str, Any]:
        """The record as a dict (not yet scrubbed)."""
        spec: RequestSpec | InvalidLine = result.item
        error = result.error
        response: Response | None = result.value if error is None else getattr(
            error, "response", None)
        rec: dict[str, Any] = {"id": self._id(), "custom_id": spec.id}
        if response is None:
            assert error is not None
            rec["response"] = None
            rec["error"] = {"code": type(error).__name__, "message": error_message(error)}
            return rec
        body: Any = None
        if response.body:
            text = _json_text(response)
            body = (json.loads(text) if text is not None
                    else response.body.decode("utf-8", errors="replace"))
        rec["response"] = {"status_code": response.status, "request_id": response.request_id,
                           "body": body}
        rec["error"] = None
        return rec

    def line(self, result: Result[Any]) -> bytes:
        """The JSON line to write for ``result`` (newline included)."""
        spec: RequestSpec | InvalidLine = result.item
        secrets: tuple[str, ...] = getattr(spec, "secrets", ())
        error = result.error
        response: Response | None = result.value if error is None else getattr(
            error, "response", None)
        text = _json_text(response) if response is not None else None
        if response is not None and text is not None:
            key = spec.id
            request_id = response.request_id
            line = (
                f'{{"id": "{self._id()}", '
                f'"custom_id": {key if isinstance(key, int) else _json_string(key)}, '
                f'"response": {{"status_code": {response.status}, "request_id": '
                f'{"null" if request_id is None else _json_string(request_id)}, '
                f'"body": {text}}}, "error": null}}'
            )
            if "\u2028" in line or "\u2029" in line:  # line breaks to some readers
                line = line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
            if not (secrets and self._scrubber(secrets).found_in_json(line)):
                try:
                    return (line + "\n").encode("utf-8")
                except UnicodeEncodeError:
                    pass
        return self.encode(self.record(result), secrets)


def batch_failures(path: str) -> set[Any]:
    """The ``custom_id`` of each request an output in the Batch format records as
    not done: no answer, or one whose status is not 2xx. A later record of an id
    wins; a torn last line (no newline) is ignored."""
    failed: set[Any] = set()
    try:
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.endswith(b"\n") or not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    key = record["custom_id"]
                    response = record["response"]
                    ok = response is not None and 200 <= response["status_code"] < 300
                except (ValueError, KeyError, TypeError):
                    raise CorruptJournal(
                        path, f"line {lineno} is not an OpenAI Batch output line; cannot "
                        "resume from this file (use another output file)") from None
                if ok:
                    failed.discard(key)
                else:
                    failed.add(key)
    except FileNotFoundError:
        return failed
    except OSError as exc:
        raise JournalError(path, exc) from None
    return failed


def holds_batch_lines(path: str) -> bool:
    """Whether the file at ``path`` starts with a line in the Batch output format."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise JournalError(path, exc) from None
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "custom_id" in record and "response" in record


def _json_text(response: Response) -> str | None:
    """A JSON body as text fit to be spliced into a line as it came (checked, no line
    breaks); None when the body is cut, empty or not JSON."""
    body = response.body
    if response.truncated or not body or body[0] not in _JSON_START:
        return None
    try:
        text = body.decode("utf-8")
        end = _decode_json(text)[1]
    except ValueError:  # not UTF-8, or not JSON
        return None
    if end != len(text) and not text[end:].isspace():
        return None
    if "\n" in text or "\r" in text:  # only whitespace there: strings can't hold them
        text = text.replace("\r", " ").replace("\n", " ")
    return text


# json.loads minus its per-call argument handling and encoding sniffing
_decode_json = json.JSONDecoder().raw_decode
# json.dumps(a_str, ensure_ascii=False) without building an encoder per call
_json_string = json.encoder.encode_basestring
# a JSON document worth splicing starts with one of these bytes: { [ "
_JSON_START = frozenset(b'{["')


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    if "\u2028" in text or "\u2029" in text:  # line breaks to some readers
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text
