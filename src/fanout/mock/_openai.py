"""The mock's other OpenAI endpoints: ``/v1/completions``, ``/v1/embeddings``, ``/v1/models``.

Answers are deterministic (the same request gets the same text or vector on every run) and
``usage`` is counted by :mod:`fanout.http._tokens`, as a client estimates it.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import sys
from array import array
from typing import Any

from fanout.http._tokens import DEFAULT_MAX_TOKENS, max_answer_tokens, prompt_tokens, text_tokens
from fanout.mock._chat import (
    MAX_N,
    NO_ARITHMETIC,
    RequestError,
    answer,
    clip,
    model_of,
    positive_int,
)

EMBEDDING_DIMENSIONS = 64
MAX_DIMENSIONS = 3072
_CREATED = 1_700_000_000
# what GET /v1/models lists; the POST endpoints accept any model name
MODELS = ("mock-1", "mock-arithmetic-1", "mock-embed-1", "mock-claude-1")


def _prompts(value: Any, name: str) -> list[str | None]:
    """The prompts of a ``prompt``/``input``: each text, or ``None`` for one given as token ids."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return [None]
        prompts: list[str | None] = []
        for item in value:
            if isinstance(item, str):
                prompts.append(item)
            elif isinstance(item, list) and item and all(isinstance(x, int) for x in item):
                prompts.append(None)
            else:
                break
        else:
            return prompts
    raise RequestError(
        f"'{name}' must be a string, an array of strings, or an array of token ids", name
    )


def completion(body: Any, *, completion_id: str, created: int) -> dict[str, Any]:
    """The ``text_completion`` answering ``body``: ``n`` choices per prompt, each cut to
    ``max_tokens`` (16 if unset, as OpenAI's default)."""
    model = model_of(body)
    if "prompt" not in body:
        raise RequestError("you must provide a 'prompt'", "prompt")
    prompts = _prompts(body["prompt"], "prompt")
    n = positive_int(body, "n", most=MAX_N) or 1
    positive_int(body, "max_tokens")
    most = max_answer_tokens(body) or DEFAULT_MAX_TOKENS
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    for prompt in prompts:
        text, cut = clip(NO_ARITHMETIC if prompt is None else answer(prompt), most)
        for _ in range(n):
            choices.append(
                {
                    "text": text,
                    "index": len(choices),
                    "logprobs": None,
                    "finish_reason": "length" if cut else "stop",
                }
            )
            completion_tokens += text_tokens(text)
    prompt_count = prompt_tokens(body)
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_count,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_count + completion_tokens,
        },
    }


def _vector(model: str, index: int, text: str | None, dimensions: int) -> list[float]:
    """A unit vector that depends only on the model and the input."""
    key = f"{model}\0{text}" if text is not None else f"{model}\0ids\0{index}"
    rng = random.Random(hashlib.blake2b(key.encode(), digest_size=16).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embedding(body: Any) -> dict[str, Any]:
    """The ``list`` of embeddings of ``body["input"]``: ``dimensions`` floats each (64 if
    unset), as JSON numbers or, with ``encoding_format: "base64"``, little-endian float32."""
    model = model_of(body)
    if "input" not in body:
        raise RequestError("you must provide an 'input'", "input")
    inputs = _prompts(body["input"], "input")
    if any(text == "" for text in inputs):
        raise RequestError("'input' cannot contain an empty string", "input")
    dimensions = positive_int(body, "dimensions", most=MAX_DIMENSIONS) or EMBEDDING_DIMENSIONS
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise RequestError(
            f"encoding_format must be 'float' or 'base64' (got {encoding!r})", "encoding_format"
        )
    data = []
    for index, text in enumerate(inputs):
        vector: list[float] | str = _vector(model, index, text, dimensions)
        if encoding == "base64":
            packed = array("f", vector)
            if sys.byteorder == "big":
                packed.byteswap()
            vector = base64.b64encode(packed.tobytes()).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = prompt_tokens(body)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def model(model_id: str) -> dict[str, Any] | None:
    """The ``model`` object of ``model_id``, or ``None`` if it is not listed."""
    if model_id not in MODELS:
        return None
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "fanout"}


def models() -> dict[str, Any]:
    """The ``list`` of models (``GET /v1/models``)."""
    return {"object": "list", "data": [model(m) for m in MODELS]}
