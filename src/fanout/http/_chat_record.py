"""The output record of one prompt of ``fanout chat``: one JSON line, the key scrubbed.

``{"id", "prompt", "answer", "finish_reason", "usage", "ok", "error", "status",
"attempts", "elapsed_ms"}``: ``answer`` is the answer's text, ``finish_reason`` OpenAI's
``finish_reason`` or Anthropic's ``stop_reason``, ``usage`` as the API returned it (null
when no answer came); ``error`` is ``{"type", "message"}`` or null; ``status`` the HTTP
status of the last answer (null when none arrived).
"""

from __future__ import annotations

from typing import Any

from fanout._result import Result
from fanout.http._chat import ChatReply, ChatRequest
from fanout.http._client import Response
from fanout.http._record import Scrubbers, error_message


class ChatRecordMaker(Scrubbers):
    """Turns a finished ``Result`` of a prompt into its output line (bytes, newline
    included)."""

    def record(self, result: Result[Any]) -> dict[str, Any]:
        """The record as a dict (not yet scrubbed)."""
        request: ChatRequest = result.item
        error = result.error
        reply: ChatReply | None = result.value if error is None else None
        response: Response | None = reply if reply is not None else getattr(
            error, "response", None)
        answer = reply.answer if reply is not None else None
        return {
            "id": request.id,
            "prompt": request.prompt,
            "answer": answer.text if answer is not None else None,
            "finish_reason": answer.finish_reason if answer is not None else None,
            "usage": answer.usage if answer is not None else None,
            "ok": error is None,
            "error": None if error is None else {"type": type(error).__name__,
                                                 "message": error_message(error)},
            "status": response.status if response is not None else None,
            "attempts": result.attempts,
            "elapsed_ms": round(result.elapsed * 1000.0, 3),
        }

    def line(self, result: Result[Any]) -> bytes:
        """The JSON line to write for ``result`` (newline included)."""
        return self.encode(self.record(result), result.item.secrets)
