"""The chat APIs ``fanout chat`` speaks: the request of one prompt, and what an answer says.

OpenAI chat completions (``POST /v1/chat/completions``, ``Authorization: Bearer KEY``;
also every OpenAI-compatible server) and Anthropic Messages (``POST /v1/messages``,
``x-api-key: KEY``, ``anthropic-version``, ``max_tokens`` required).

A prompt is sent by the same ``HttpClient`` as ``fanout http``'s requests, so it gets the
same retries, ``Retry-After``, rate-limit headers, proxies and secret scrubbing;
:class:`ChatClient` adds reading the answer: its text (the first choice's message, or the
Anthropic text blocks joined), why it ended (``finish_reason`` / ``stop_reason``) and its
``usage``, as the API returned them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fanout._progress_rate import RateMeter
from fanout.http._client import DEFAULT_RETRY_STATUSES, HttpClient, HTTPStatusError, Response
from fanout.http._ratelimit import usage_counts
from fanout.http._spec import RequestSpec
from fanout.http._tokens import Api, estimate_tokens

ANTHROPIC_VERSION = "2023-06-01"
#: statuses a chat prompt is retried on: those the official SDKs retry (408 timeout, 409
#: lock conflict, 429, every 5xx: Anthropic's 529 "overloaded" too)
RETRY_STATUSES = frozenset({408, 409, *DEFAULT_RETRY_STATUSES, *range(500, 600)})


@dataclass(frozen=True)
class ChatApi:
    """What differs between the chat APIs."""

    name: Api
    title: str
    path: str
    #: where requests go without --base-url or the variable ``base_env``
    base_url: str
    base_env: str
    #: the variable holding the key, unless --api-key-env names another
    key_env: str
    #: ``max_tokens`` sent when --max-tokens is not given (None: not sent)
    default_max_tokens: int | None
    max_temperature: float
    #: the roles a message may have (Anthropic: system text goes apart, see ``lift_system``)
    roles: frozenset[str]

    def key_headers(self, key: str | None) -> dict[str, str]:
        """The headers carrying ``key`` (and the version, for Anthropic)."""
        if self.name == "anthropic":
            headers = {"anthropic-version": ANTHROPIC_VERSION}
            if key:
                headers["x-api-key"] = key
            return headers
        return {"Authorization": f"Bearer {key}"} if key else {}


OPENAI = ChatApi(
    "openai", "OpenAI", "/v1/chat/completions", "https://api.openai.com", "OPENAI_BASE_URL",
    "OPENAI_API_KEY", None, 2.0,
    frozenset({"system", "developer", "user", "assistant", "tool"}),
)
ANTHROPIC = ChatApi(
    "anthropic", "Anthropic", "/v1/messages", "https://api.anthropic.com", "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY", 1024, 1.0, frozenset({"user", "assistant"}),
)
APIS: dict[str, ChatApi] = {api.name: api for api in (OPENAI, ANTHROPIC)}


@dataclass(frozen=True)
class ChatSettings:
    """What every prompt of a run shares: where it goes and how it is asked."""

    api: ChatApi
    url: str
    model: str
    headers: dict[str, str]
    #: lower-case names of the headers holding the key
    sensitive: frozenset[str] = frozenset()
    #: the key, in every form it may be written in
    secrets: tuple[str, ...] = ()
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None

    def body(self, messages: list[dict[str, Any]], system: str | None) -> dict[str, Any]:
        """The request body for ``messages``; ``system``: the prompt's own system text
        (Anthropic), which wins over --system."""
        if self.api.name == "anthropic":
            body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens,
                                    "messages": messages}
            system = system if system is not None else self.system
            if system is not None:
                body["system"] = system
        else:
            if self.system is not None and not any(
                    m.get("role") in ("system", "developer") for m in messages):
                messages = [{"role": "system", "content": self.system}, *messages]
            body = {"model": self.model, "messages": messages}
            if self.max_tokens is not None:
                body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body


@dataclass(slots=True)
class ChatRequest(RequestSpec):
    """One prompt as the request that sends it; ``prompt`` is its text for the record
    (the last user message's, for a list of messages)."""

    prompt: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """What an answer says: its text (None when it has none, e.g. only a refusal or a
    tool call), why it ended, and its ``usage`` as the API returned it."""

    text: str | None
    finish_reason: str | None
    usage: Any


class InvalidAnswer(Exception):
    """A success status whose body is not a chat answer: the base URL is probably not
    the API's. Not retried."""

    retryable = False

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


def read_answer(api: ChatApi, response: Response) -> Answer:
    """The answer in a successful response; ``InvalidAnswer`` if it holds none."""
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if api.name == "anthropic":
        blocks = body.get("content") if isinstance(body, dict) else None
        if not isinstance(blocks, list):
            raise InvalidAnswer("the answer is not an Anthropic message (no content list): "
                                "is --base-url the Anthropic API?", response)
        texts = [b["text"] for b in blocks
                 if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"),
                                                                                   str)]
        return Answer("".join(texts) if texts else None, _text_or_none(body.get("stop_reason")),
                      body.get("usage"))
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise InvalidAnswer("the answer is not a chat completion (no choices[0].message): "
                            "is --base-url an OpenAI-compatible API?", response)
    assert isinstance(first, dict) and isinstance(body, dict)
    return Answer(_text_or_none(message.get("content")),
                  _text_or_none(first.get("finish_reason")), body.get("usage"))


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def api_error(response: Response) -> str | None:
    """The message of an API's error body (``{"error": {"message"}}``, OpenAI's and
    Anthropic's shape), if it has one."""
    try:
        error = json.loads(response.body).get("error")
    except (ValueError, AttributeError):
        return None
    message = error.get("message") if isinstance(error, dict) else None
    return message.strip() or None if isinstance(message, str) else None


class ChatReply(Response):
    """A successful response with its answer read."""

    __slots__ = ("answer",)

    def __init__(self, response: Response, answer: Answer) -> None:
        super().__init__(response.status, response.reason, response.headers, response.body,
                         response.truncated, response.request_id)
        self.answer = answer


class ChatClient:
    """``await chat(request)`` sends one prompt and returns its ``ChatReply``, or raises
    (``HTTPStatusError`` with the API's error message added, ``InvalidAnswer``, or what
    the ``HttpClient`` raises). Counts the tokens of the answers' ``usage``."""

    def __init__(self, http: HttpClient, api: ChatApi) -> None:
        self.http = http
        self.api = api
        #: prompt + completion (input + output) tokens of the answers so far
        self.tokens = 0
        #: tokens the API's limiter reserved for every attempt so far (prompt + max tokens)
        self.reserved = 0
        self.__name__ = "chat"  # the progress display's label

    async def __call__(self, request: ChatRequest) -> ChatReply:
        self.reserved += estimate_tokens(request.json, self.api.name)
        try:
            response = await self.http(request)
        except HTTPStatusError as exc:
            message = api_error(exc.response)
            if message is not None:
                exc.add_note(message[:500])
            raise
        answer = read_answer(self.api, response)
        counts = usage_counts(answer.usage, self.api.name)
        if counts is not None:
            self.tokens += counts[0] + counts[1]
        return ChatReply(response, answer)

    def tokens_per_minute(self) -> TokenRate:
        """A ``progress_details`` function showing the recent tokens per minute."""
        return TokenRate(self)


class TokenRate:
    """``6,992 tokens/min (148,212 reserved)``: the recent rates of the answers' tokens
    and of the tokens the API's limiter reserved for the prompts sent (what a
    tokens-per-minute limit counts), for the progress display (called from its thread;
    it reads counters the run's thread adds to)."""

    def __init__(self, client: ChatClient,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._used: RateMeter | None = None
        self._reserved: RateMeter | None = None

    def __call__(self) -> str:
        now, used, reserved = self._clock(), self._client.tokens, self._client.reserved
        if self._used is None or self._reserved is None:
            self._used, self._reserved = RateMeter(now, used), RateMeter(now, reserved)
        self._used.sample(now, used)
        self._reserved.sample(now, reserved)
        rate, booked = self._used.recent(), self._reserved.recent()
        if rate is None:
            return ""
        text = f"{rate * 60:,.0f} tokens/min"
        return text if booked is None else f"{text} ({booked * 60:,.0f} reserved)"
