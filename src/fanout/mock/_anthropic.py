"""The mock Anthropic Messages API (``POST /v1/messages``): validate the request, answer the
arithmetic of the last user message, count ``usage`` as :mod:`fanout.http._tokens` does."""

from __future__ import annotations

from typing import Any

from fanout.http._tokens import prompt_tokens, text_tokens
from fanout.mock._chat import RequestError, answer, clip, content_text, model_of, positive_int

_ROLES = frozenset({"user", "assistant"})
# the HTTP status of each Anthropic error type (529: the API is overloaded)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, request_id: str) -> dict[str, Any]:
    """Anthropic's error shape for ``status``."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id,
    }


def message(body: Any, *, message_id: str) -> dict[str, Any]:
    """The ``message`` object answering ``body``; :class:`RequestError` if it is invalid."""
    model = model_of(body)
    most = positive_int(body, "max_tokens")
    if most is None:
        raise RequestError("max_tokens: Field required", "max_tokens")
    system = body.get("system")
    if system is not None:
        content_text(system, "system")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: must be a non-empty array of messages", "messages")
    question = None
    for index, entry in enumerate(messages):
        if not isinstance(entry, dict):
            raise RequestError(f"messages.{index}: must be an object", f"messages.{index}")
        role = entry.get("role")
        if role not in _ROLES:
            raise RequestError(
                f"messages.{index}.role: must be 'user' or 'assistant' (got {role!r})",
                f"messages.{index}.role",
            )
        if "content" not in entry:
            raise RequestError(
                f"messages.{index}.content: Field required", f"messages.{index}.content"
            )
        text = content_text(entry["content"], f"messages.{index}.content")
        if role == "user":
            question = text
    if question is None:
        raise RequestError("messages: must contain a message with role 'user'", "messages")
    text, cut = clip(answer(question), most)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "max_tokens" if cut else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt_tokens(body, "anthropic"),
            "output_tokens": text_tokens(text),
        },
    }
