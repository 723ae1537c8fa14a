"""The token estimator: what a provider's limiter reserves when a request arrives."""

from __future__ import annotations

from typing import Any

import pytest

from fanout.http._tokens import (
    DEFAULT_MAX_TOKENS,
    answers_count,
    completion_budget,
    estimate_tokens,
    max_answer_tokens,
    prompt_tokens,
    text_tokens,
)


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)]
)
def test_text_tokens_are_characters_over_four_rounded_up(text: str, tokens: int) -> None:
    assert text_tokens(text) == tokens


def test_chat_prompt_counts_the_characters_of_every_message_together() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "abc"},  # 3 characters
            {"role": "user", "content": [{"type": "text", "text": "defgh"}]},  # 5
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": None},
        ],
    }
    assert prompt_tokens(body) == 2  # ceil(8 / 4)


@pytest.mark.parametrize(
    ("prompt", "tokens"),
    [
        ("12345678", 2),
        (["1234", "12345"], 3),  # 9 characters together
        ([101, 102, 103], 3),  # token ids count one each
        ([[1, 2], [3, 4, 5]], 5),
        (7, 0),
    ],
)
def test_completion_prompt_and_embedding_input_count_text_or_token_ids(
    prompt: Any, tokens: int
) -> None:
    assert prompt_tokens({"model": "m", "prompt": prompt}) == tokens
    assert prompt_tokens({"model": "m", "input": prompt}) == tokens


def test_openai_reserves_the_prompt_plus_the_maximum_times_n() -> None:
    messages = [{"role": "user", "content": "x" * 40}]  # 10 tokens
    assert estimate_tokens({"messages": messages, "max_tokens": 50}) == 60
    assert estimate_tokens({"messages": messages, "max_tokens": 50, "n": 3}) == 160
    # max_completion_tokens wins over the older max_tokens
    both = {"messages": messages, "max_tokens": 50, "max_completion_tokens": 20}
    assert estimate_tokens(both) == 30
    assert max_answer_tokens(both) == 20
    assert estimate_tokens({"messages": messages}) == 10 + DEFAULT_MAX_TOKENS


def test_a_legacy_completion_reserves_n_answers_per_prompt() -> None:
    body = {"model": "m", "prompt": ["abcd", "efgh"], "max_tokens": 5, "n": 2}
    assert answers_count(body) == 4
    assert completion_budget(body) == 20
    assert estimate_tokens(body) == 22
    # one prompt given as token ids is one prompt
    assert answers_count({"prompt": [1, 2, 3], "n": 2}) == 2


def test_embeddings_reserve_their_input_only() -> None:
    body = {"model": "e", "input": ["abcd", "efgh"]}
    assert completion_budget(body) == 0
    assert estimate_tokens(body) == 2


def test_anthropic_counts_system_and_messages_and_reserves_max_tokens() -> None:
    body = {
        "model": "c",
        "system": [{"type": "text", "text": "abcd"}],
        "messages": [{"role": "user", "content": "efgh"}],
        "max_tokens": 100,
        "n": 5,  # not an Anthropic field: ignored
    }
    assert prompt_tokens(body, "anthropic") == 2
    assert estimate_tokens(body, "anthropic") == 102
    assert estimate_tokens({**body, "system": "abcdabcd"}, "anthropic") == 103
    # Anthropic has no max_completion_tokens
    assert max_answer_tokens({"max_completion_tokens": 3}, "anthropic") is None


@pytest.mark.parametrize(
    "body",
    [None, [1, 2], "text", {"messages": "hi"}, {"messages": [1, "a"]}, {"prompt": {"a": 1}}],
)
def test_malformed_requests_cost_nothing_and_never_raise(body: Any) -> None:
    assert prompt_tokens(body) == 0
    assert prompt_tokens(body, "anthropic") == 0


@pytest.mark.parametrize("bad", [0, -3, "5", 2.5, True, None])
def test_a_maximum_or_n_that_is_not_a_positive_integer_counts_as_unset(bad: Any) -> None:
    body = {"messages": [{"role": "user", "content": "abcd"}], "max_tokens": bad, "n": bad}
    assert estimate_tokens(body) == 1 + DEFAULT_MAX_TOKENS
