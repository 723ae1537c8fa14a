"""How many tokens a request costs, counted the way the provider's rate limiter counts it.

A provider's tokens-per-minute limiter cannot run the model's tokenizer on every request at
the door, so it *estimates* the cost when the request arrives and reserves it at once:

**OpenAI** (``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``)
    reserves the prompt's tokens, estimated from its characters (about 4 per token), plus the
    most the answer may cost: ``max_completion_tokens`` (else ``max_tokens``, else
    :data:`DEFAULT_MAX_TOKENS`) times ``n`` (times the number of prompts of a legacy
    completion). An embeddings request reserves its input only.

    The prompt's text is the ``content`` of every message of ``messages`` (a string, or the
    ``text`` of each part of a list of parts; images and other parts count nothing), or the
    ``prompt`` (completions) or ``input`` (embeddings): a string or a list of strings. A
    prompt given as token ids (a list of integers, or a list of such lists) costs one token
    per id.

**Anthropic** (``/v1/messages``)
    reserves the input's tokens (the text of ``system``, a string or a list of text blocks,
    and of every message's ``content``) plus ``max_tokens``, which the API requires.

Estimated text tokens are the characters of all the prompt's texts together, divided by 4,
rounded up: :func:`text_tokens`. The fanout mock server counts ``usage`` with these same
functions (prompt tokens = :func:`prompt_tokens`; each answer's tokens = :func:`text_tokens`
of its text), so a client's estimate and the mock's accounting agree exactly; against a real
API they agree on the reservation, while ``usage`` is the tokenizer's true count.

These functions never raise: what is not a well-formed request counts as nothing (and
``n`` or a maximum that is not a positive integer counts as unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Api = Literal["openai", "anthropic"]

CHARS_PER_TOKEN = 4
# the legacy completions API's default max_tokens; used as the reservation of any OpenAI
# request that sets no maximum
DEFAULT_MAX_TOKENS = 16


def text_tokens(text: str) -> int:
    """Estimated tokens of ``text``: ``ceil(len(text) / 4)``, so at least 1 unless empty."""
    return -(-len(text) // CHARS_PER_TOKEN)


def _content_chars(content: Any) -> int:
    """Characters of a message ``content`` or a ``system``: a string or a list of parts."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return 0


def _prompt_cost(prompt: Any) -> tuple[int, int]:
    """``(characters, token ids)`` of a ``prompt``/``input``: text, texts, ids, or lists of ids."""
    if isinstance(prompt, str):
        return len(prompt), 0
    if not isinstance(prompt, list):
        return 0, 0
    if all(isinstance(item, int) for item in prompt):
        return 0, len(prompt)
    chars = ids = 0
    for item in prompt:
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, list):
            ids += sum(1 for value in item if isinstance(value, int))
    return chars, ids


def _messages_chars(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(_content_chars(m.get("content")) for m in messages if isinstance(m, Mapping))


def prompt_tokens(body: Any, api: Api = "openai") -> int:
    """Estimated tokens of the prompt of request ``body`` (``usage.prompt_tokens`` of the mock).

    OpenAI: ``messages``, else ``prompt``, else ``input``; Anthropic: ``system`` + ``messages``.
    """
    if not isinstance(body, Mapping):
        return 0
    if api == "anthropic":
        chars = _content_chars(body.get("system")) + _messages_chars(body.get("messages"))
        return -(-chars // CHARS_PER_TOKEN)
    if "messages" in body:
        chars, ids = _messages_chars(body["messages"]), 0
    else:
        chars, ids = _prompt_cost(body.get("prompt", body.get("input")))
    return -(-chars // CHARS_PER_TOKEN) + ids


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def max_answer_tokens(body: Any, api: Api = "openai") -> int | None:
    """The most tokens one answer of ``body`` may have: ``max_completion_tokens``, else
    ``max_tokens`` (Anthropic: ``max_tokens`` only); ``None`` when unset."""
    if not isinstance(body, Mapping):
        return None
    if api == "openai":
        chosen = _positive_int(body.get("max_completion_tokens"))
        if chosen is not None:
            return chosen
    return _positive_int(body.get("max_tokens"))


def answers_count(body: Any) -> int:
    """How many answers an OpenAI request asks for: ``n`` per prompt, times the prompts of a
    legacy completion (a list of strings or of token-id lists)."""
    if not isinstance(body, Mapping):
        return 1
    n = _positive_int(body.get("n")) or 1
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and not all(isinstance(x, int) for x in prompt):
        return n * len(prompt)
    return n


def completion_budget(body: Any, api: Api = "openai") -> int:
    """Tokens reserved for the answers of ``body``: 0 for embeddings (an ``input`` without
    ``messages`` or ``prompt``); Anthropic ``max_tokens``; else the maximum times the answers."""
    if not isinstance(body, Mapping):
        return 0
    if api == "anthropic":
        return max_answer_tokens(body, api) or 0
    if "messages" not in body and "prompt" not in body:
        return 0
    most = max_answer_tokens(body, api) or DEFAULT_MAX_TOKENS
    return most * answers_count(body)


def estimate_tokens(body: Any, api: Api = "openai") -> int:
    """The tokens the provider's limiter reserves when ``body`` arrives: the prompt's
    estimated tokens plus the answers' budget (see the module docs)."""
    return prompt_tokens(body, api) + completion_budget(body, api)
